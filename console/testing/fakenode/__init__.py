"""The insides of console/testing/fake.py's FakeNode, an in-memory overlayd
(console/testing/fake_data.py holds the JSON builders and the story's names, which tests use too).

    story.py       the NAS story (FakeNode.sample) and the same in bulk (FakeNode.large)
    http.py        request parsing and the daemon's error answers
    routes.py      the node, peer, event and joined-network routes, and the routing table
    controller.py  the controller routes: hosted networks and their members
    metrics.py     GET /metrics
"""
