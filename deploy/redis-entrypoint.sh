#!/bin/sh
# Start Redis for LikeLoop with an ACL: the default (password-less) user off, and one user,
# "likeloop", with the password in LIKELOOP_REDIS_PASSWORD and the rights in redis-acl.rules.
# LikeLoop connects as redis://likeloop:<password>@host:6379/0. Extra arguments go to redis-server.
# With LIKELOOP_REDIS_ADMIN_PASSWORD set, a second user, "admin", with every right: what a Redis
# Cluster's nodes need to be joined (redis-cli --cluster create) and to replicate (masteruser),
# which LikeLoop's own user must not be able to do (CLUSTER RESET would wipe a node).
set -eu
: "${LIKELOOP_REDIS_PASSWORD:?set LIKELOOP_REDIS_PASSWORD (letters and digits, e.g. openssl rand -hex 32)}"
case "$LIKELOOP_REDIS_PASSWORD" in
  *[!A-Za-z0-9]*) echo "LIKELOOP_REDIS_PASSWORD: use letters and digits only (it goes into a URL)" >&2; exit 2 ;;
esac
here=${LIKELOOP_REDIS_CONFIG_DIR:-/usr/local/etc/redis}
acl=${LIKELOOP_REDIS_ACL_FILE:-/tmp/likeloop-users.acl}
rules=$(grep -v '^#' "$here/redis-acl.rules" | grep -v '^[[:space:]]*$' | tr '\n' ' ')  # one line, however many the file has
umask 077
printf 'user default off\nuser likeloop on >%s ~* &* %s\n' "$LIKELOOP_REDIS_PASSWORD" "$rules" > "$acl"
if [ -n "${LIKELOOP_REDIS_ADMIN_PASSWORD:-}" ]; then
  case "$LIKELOOP_REDIS_ADMIN_PASSWORD" in
    *[!A-Za-z0-9]*) echo "LIKELOOP_REDIS_ADMIN_PASSWORD: use letters and digits only" >&2; exit 2 ;;
  esac
  printf 'user admin on >%s ~* &* +@all\n' "$LIKELOOP_REDIS_ADMIN_PASSWORD" >> "$acl"
fi
if [ "$(id -u)" = 0 ] && id redis >/dev/null 2>&1; then
  chown redis:redis "$acl"  # read by the server once it runs as the redis user
fi
if command -v docker-entrypoint.sh >/dev/null 2>&1; then
  # The image's own entrypoint: started as root, it gives /data to the redis user and runs the
  # server as that user, never as root.
  exec docker-entrypoint.sh redis-server "$here/redis.conf" --aclfile "$acl" "$@"
fi
exec redis-server "$here/redis.conf" --aclfile "$acl" "$@"
