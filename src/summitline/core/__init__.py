"""The pure core: plan, policy, call state machine, record. No I/O, no event loop."""
