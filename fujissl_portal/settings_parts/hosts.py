"""Target hosts over SSH, the TLS check after an installation, and deployments."""

from .environment import env

# Target hosts (certificates/seams/ssh.py, certificates/hosts/).
SSH_CONNECT_TIMEOUT = env.float("SSH_CONNECT_TIMEOUT", default=10)
SSH_COMMAND_TIMEOUT = env.float("SSH_COMMAND_TIMEOUT", default=120)
# A login to a host is kept this long for the next session in the same worker
# process (0: log in every time), at most SSH_KEEP_PER_HOST idle ones per host.
SSH_KEEP_SECONDS = env.float("SSH_KEEP_SECONDS", default=30)
SSH_KEEP_PER_HOST = env.int("SSH_KEEP_PER_HOST", default=4)
TLS_CHECK_TIMEOUT = env.float("TLS_CHECK_TIMEOUT", default=5)
DEPLOY_TLS_GRACE_SECONDS = env.float("DEPLOY_TLS_GRACE_SECONDS", default=30)
DEPLOY_MAX_PARALLEL = env.int("DEPLOY_MAX_PARALLEL", default=4)
# When certificates bound for a host are still being issued, its next batch
# waits for them up to this long after its oldest request (0: never waits).
DEPLOY_BATCH_LINGER_SECONDS = env.float("DEPLOY_BATCH_LINGER_SECONDS", default=1.5)
