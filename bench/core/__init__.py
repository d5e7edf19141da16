"""Parts of the core bench (bench/bench_core.py).

- batched: the batched data path (TCP super-frames from a TAP with offloads, one
  SendMany per super-frame, GRO batches coalesced back into super-frames) between two
  in-process members, over real UDP sockets with and without GSO/GRO and without sockets
  at all, beside a bare UDP GSO/GRO socket pair.

The modules import `overlay_core`, so the repository must be on sys.path; the script
bench/bench_core.py puts it there before importing this package.
"""
