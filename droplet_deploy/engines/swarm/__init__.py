"""Deploying a compose app to a Docker Swarm cluster through its manager.

- ``state``: probes (a command plus a pure parser) for the swarm, its nodes, a stack's services and their tasks;
  ``snapshot``: those tasks as every engine reports what runs.
- ``stackfile``: the pure planner turning the app's compose file into the stack file the toolkit deploys.
- ``distribute``: the built image onto every node: the layers it lacks through the manager's registry
  (``registry``), or the whole image by ``docker save`` streamed into the node's ``docker load``.
- ``rollout``: a health-gated start-first rollout, proven on every task's own address, with automatic rollback.
- ``day_two``, ``one_off``: pure plans of restart, stop/start and one-off containers.
- ``backend``: the engine (``SwarmBackend``) that puts those together behind the ``engines.base`` contract.

Every function takes the manager as a ``Target``; other nodes are reached through a ``NodeEngine`` (the argv
that talks to their engine from the manager), so the same code runs against this machine and a cluster.
"""
