"""overlayd: the node of the ztui overlay network."""

__version__ = "0.1.0"
