"""Agent hosts: enrolment, check-ins and how long a run waits for an agent."""

from .environment import env

# Agent hosts (certificates/agents/, docs/agent-protocol.md): an enrolment code is
# good this long; a check-in holds its answer up to AGENT_POLL_WAIT seconds while
# there is nothing to do; an agent is "silent" after this many missed intervals;
# a run waits at most AGENT_WAIT_MAX_SECONDS for an agent to write challenge
# files or send its CSR, and a deployment request of an agent host is answered
# as failed when nobody took it up within its wait budget.
AGENT_ENROLMENT_HOURS = env.int("AGENT_ENROLMENT_HOURS", default=24)
AGENT_POLL_WAIT = env.int("AGENT_POLL_WAIT", default=25)
AGENT_SILENT_INTERVALS = env.int("AGENT_SILENT_INTERVALS", default=3)
AGENT_WAIT_MAX_SECONDS = env.int("AGENT_WAIT_MAX_SECONDS", default=900)
AGENT_THROTTLE_RATE = env("AGENT_THROTTLE_RATE", default="240/min")
AGENT_ENROL_THROTTLE_RATE = env("AGENT_ENROL_THROTTLE_RATE", default="10/min")
