"""A user's pool settings, checked with ``wayout check --config pool_settings.py:COLD``."""

from fsm.config import PoolConfig

#: Children take up to 10 s to spawn and 10 s to initialize, but a job waits 15 s:
#: on a cold pool every job fails NoCapacity.
COLD = PoolConfig(num_idle=1, max_children=2, spawn_timeout=10, initialize_timeout=10,
                  queue_timeout=15)
#: The fix: a job waits longer than a child may take to become ready.
FIXED = PoolConfig(num_idle=1, max_children=2, spawn_timeout=10, initialize_timeout=10,
                   queue_timeout=25)
