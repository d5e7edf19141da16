"""The console on a FakeNode, in a real terminal: for the console benchmark (bytes written
to an idle terminal), for trying the app without a daemon, and for driving it in tmux.

    python -m console.testing.fake_app                  # the NAS story (FakeNode.sample)
    python -m console.testing.fake_app --large          # 500 peers, a network of 200 members
    python -m console.testing.fake_app --tick-s 1       # the fake moves: counters, latencies

Without --tick-s the node never changes, so what the app draws after it settles is its
own idle cost. The fake's clock starts at fake_data.EPOCH and moves only with its ticks.
"""

from __future__ import annotations

import argparse
import sys

from ..app import ZtuiApp
from .fake import FakeNode


class FakeZtuiApp(ZtuiApp):
    """ZtuiApp on a FakeNode, whose clock it reads; the node ticks every `tick_s` if set."""

    def __init__(self, node: FakeNode, *, tick_s: float = 0.0) -> None:
        super().__init__(node.client(), clock=lambda: node.now, wall_clock=lambda: node.now)
        self.node = node
        self.tick_s = tick_s

    def on_ready(self) -> None:
        if self.tick_s > 0:
            self.set_interval(self.tick_s, lambda: self.node.tick(self.tick_s))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m console.testing.fake_app", description=__doc__)
    parser.add_argument("--large", action="store_true", help="FakeNode.large() instead")
    parser.add_argument("--peers", type=int, default=500, help="peers with --large")
    parser.add_argument("--members", type=int, default=200, help="members with --large")
    parser.add_argument("--tick-s", type=float, default=0.0, help="tick the fake every S s")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.large:
        node = FakeNode.large(peers=args.peers, members=args.members, seed=args.seed)
    else:
        node = FakeNode.sample(seed=args.seed)
    FakeZtuiApp(node, tick_s=args.tick_s).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
