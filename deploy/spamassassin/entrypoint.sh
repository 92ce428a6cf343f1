#!/bin/bash
# SpamAssassin container (deploy/compose.yaml): spamd with local tests only (-L, no network
# lookups) and two children, and spamass-milter in front of it for Postfix, on port 10783.
set -euo pipefail
spamd --listen=127.0.0.1:10784 -u debian-spamd -L --min-children=1 --max-children=2 -d --pidfile=/run/spamd.pid
for _ in $(seq 1 120); do (exec 3<>/dev/tcp/127.0.0.1/10784) 2>/dev/null && break; sleep 0.5; done
exec spamass-milter -p inet:10783@0.0.0.0 -- -d 127.0.0.1 -p 10784 -s 1048576  # as scripts/stack.sh
