"""The insides of console/testing/fake.py's FakeNode, an in-memory overlayd
(console/testing/fake_data.py holds the JSON builders and the story's names, which tests use too).

    routes.py      the node, peer, event and joined-network routes, and the routing, built
                   from the daemon's own table (overlay_core.api.schema.ROUTES)
    controller.py  the controller routes: hosted networks and their members
    roots.py       GET and PUT /roots
    paths.py       the members' path reports and the paths view (the daemon's own builder)
    story.py       the NAS story (FakeNode.sample) and the same in bulk (FakeNode.large)
    http.py        request parts and answers, with the daemon's checks and errors

GET /metrics is the daemon's own writer (overlay_core.api.schema.metrics_text) on the
fake's state.
"""
