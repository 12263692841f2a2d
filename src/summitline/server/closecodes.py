"""WebSocket close codes for fatal signaling errors (4000-4999 are ours)."""

MESSAGE_TOO_BIG = 1009
POLICY = 1008  # rate limit, too many errors
OVERLOADED = 1013  # a reader too slow for its queue
INTERNAL = 1011
NODE_LOST = 1012  # this node was taken for gone by the others (server/cluster.py)

BAD_HANDSHAKE = 4000  # the first message was not a valid hello
UNSUPPORTED_VERSION = 4001
AUTH_FAILED = 4002  # not admitted: unknown call, device not in the plan, bad/replayed hello
PLAN_UNSIGNED = 4003  # the plan lacks a delegation's signature
# 4004 (was: unknown call) is no longer sent: it told strangers which calls exist
SEAT_TAKEN = 4005  # a second principal of a delegation
REPLACED = 4006  # the same device connected again; the new connection took over
BAD_ORIGIN = 4007  # a page of another origin (sent before accept: the client sees 403)
TOO_MANY = 4008  # too many connections for this call
CALL_ENDED = 4010
DEVICE_REVOKED = 4011  # its delegation revoked the device
