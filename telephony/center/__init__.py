"""The contact center: instance config, agents, queues, routing, contacts, quick connects, CTRs."""
