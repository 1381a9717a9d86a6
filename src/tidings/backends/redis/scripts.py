"""The Lua scripts: every multi-key step that must be atomic runs on the server as one script.

Each script is registered once per client (``redis.asyncio.Redis.register_script``): redis-py sends
``EVALSHA`` and falls back to loading the script after ``NOSCRIPT`` (a restarted server forgets them).
A script's effects are written to the AOF as one ``MULTI``/``EXEC``, so after a crash either all of
them are there or none. Times come from the server's ``TIME``, never from a client clock.

Ids are strings in Lua; numbers are formatted with ``%.0f`` (Lua 5.1's ``tostring`` would write
``1.7e+12``). Doubles hold integers exactly up to 2**53: millisecond times and offsets stay far below.
"""

from __future__ import annotations

from typing import Final

from redis.asyncio import Redis

_COMMON: Final = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function split(id)
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end
local function last_entry(stream)
  local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  if #last == 0 then return nil end
  return last[1][1]
end
"""

PUBLISH: Final = (
    _COMMON
    + """
-- KEYS: stream, msg-id key. ARGV: maxlen (0: none), dedupe window ms (0: none), partition, fields...
-- Returns {0, id} when stored, {1, "<partition> <id>"} when the msg-id key says it already was.
local window = tonumber(ARGV[2])
if window > 0 then
  local seen = redis.call('GET', KEYS[2])
  if seen then return {1, seen} end
end
local ms, offset = now_ms(), 0
local last = last_entry(KEYS[1])
if last then
  local last_ms, last_offset = split(last)
  offset = last_offset + 1
  if last_ms > ms then ms = last_ms end
end
local id = string.format('%.0f-%.0f', ms, offset)
local args = {'XADD', KEYS[1]}
if tonumber(ARGV[1]) > 0 then
  args[#args + 1] = 'MAXLEN'
  args[#args + 1] = ARGV[1]
end
args[#args + 1] = id
for i = 4, #ARGV do args[#args + 1] = ARGV[i] end
redis.call(unpack(args))
if window > 0 then redis.call('SET', KEYS[2], ARGV[3] .. ' ' .. id, 'PX', window) end
return {0, id}
"""
)

PARTITIONS: Final = """
-- KEYS: topic meta hash. ARGV: partitions to create the topic with when it does not exist (0: never),
-- the channel announcing new topics, the topic. Returns {created (0/1), partition count (0: unknown)};
-- a topic it creates is announced on the channel (pattern subscriptions take it at once).
local created = 0
if tonumber(ARGV[1]) > 0 then
  created = redis.call('HSETNX', KEYS[1], 'partitions', ARGV[1])
  if created == 1 then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
end
return {created, tonumber(redis.call('HGET', KEYS[1], 'partitions') or '0')}
"""

START_ID: Final = (
    _COMMON
    + """
-- KEYS: stream. ARGV: offset. Returns the group position (last delivered id) whose next entry is the
-- one at that offset, clamped to what is retained: a binary search over the ids' millisecond part
-- (append times and offsets grow together), about 40 XREVRANGE probes at most.
local wanted = tonumber(ARGV[1])
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
if #first == 0 then return '0-0' end
local low, first_offset = split(first[1][1])
if wanted <= first_offset then return '0-0' end
local last = last_entry(KEYS[1])
local high, last_offset = split(last)
if wanted > last_offset then return last end
while low < high do
  local middle = math.floor((low + high) / 2)
  local upto = string.format('%.0f-18446744073709551615', middle)
  local probe = redis.call('XREVRANGE', KEYS[1], upto, '-', 'COUNT', 1)
  local _, offset = split(probe[1][1])
  if offset >= wanted then high = middle else low = middle + 1 end
end
return string.format('%.0f-%.0f', low, wanted - 1)
"""
)

NACK: Final = (
    _COMMON
    + """
-- KEYS: stream, delay zset. ARGV: group, consumer, id, delay ms.
-- The entry stays pending (so it survives any crash); its due time goes in the delay zset, and its idle
-- clock restarts (XCLAIM JUSTID does not count a delivery) so the ack deadline does not take it first.
local claimed = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
if #claimed == 0 then return 0 end
redis.call('ZADD', KEYS[2], now_ms() + tonumber(ARGV[4]), ARGV[3])
return 1
"""
)

RECLAIM: Final = (
    _COMMON
    + """
-- KEYS: stream, delay zset. ARGV: group, consumer, min idle ms, count, only this consumer's ('' = any).
-- Claims for ARGV[2], at most `count`: first the delayed entries now due, then entries idle for
-- min idle ms (past the ack deadline) that are not delayed. A delayed entry found idle gets its idle
-- clock restarted instead. Returns {{id, fields, deliveries}, ...} in that order.
local group, consumer, min_idle, budget = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local out = {}
local function claim(id, idle)
  local got = redis.call('XCLAIM', KEYS[1], group, consumer, idle, id)
  if #got > 0 and got[1] then
    local info = redis.call('XPENDING', KEYS[1], group, id, id, 1)
    out[#out + 1] = {got[1][1], got[1][2], info[1][4]}
    budget = budget - 1
  end
end
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now_ms(), 'LIMIT', 0, budget)
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[2], id)
  claim(id, 0)
end
if budget > 0 then
  local query = {'XPENDING', KEYS[1], group, 'IDLE', min_idle, '-', '+', budget}
  if ARGV[5] ~= '' then query[#query + 1] = ARGV[5] end
  for _, entry in ipairs(redis.call(unpack(query))) do
    if redis.call('ZSCORE', KEYS[2], entry[1]) then
      redis.call('XCLAIM', KEYS[1], group, entry[2], 0, entry[1], 'JUSTID')
    elseif budget > 0 then
      claim(entry[1], min_idle)
    end
  end
end
return out
"""
)

RESET: Final = """
-- KEYS: stream, delay zset. ARGV: group. After XGROUP SETID: settles everything pending, forgets delays.
while true do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1000)
  if #pending == 0 then break end
  for _, entry in ipairs(pending) do redis.call('XACK', KEYS[1], ARGV[1], entry[1]) end
end
redis.call('DEL', KEYS[2])
return 1
"""

COMMITTED: Final = (
    _COMMON
    + """
-- KEYS: stream. ARGV: group. Returns the group's committed offset (every offset below it is settled):
-- the oldest pending entry's, else the next entry's after the last delivered, else the end offset;
-- -1 when the group does not exist on this stream.
local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])
if not ok then return -1 end
local delivered = nil
for _, info in ipairs(groups) do
  local fields = {}
  for i = 1, #info, 2 do fields[info[i]] = info[i + 1] end
  if fields['name'] == ARGV[1] then delivered = fields['last-delivered-id'] end
end
if not delivered then return -1 end
local summary = redis.call('XPENDING', KEYS[1], ARGV[1])
if summary[1] > 0 then
  local _, offset = split(summary[2])
  return offset
end
local following = redis.call('XRANGE', KEYS[1], '(' .. delivered, '+', 'COUNT', 1)
if #following > 0 then
  local _, offset = split(following[1][1])
  return offset
end
local last = last_entry(KEYS[1])
if not last then return 0 end
local _, offset = split(last)
return offset + 1
"""
)

COORDINATE: Final = (
    _COMMON
    + """
-- KEYS: members zset, then the lease key of each partition in order. ARGV: member, lease ms,
-- releasable ('0'/'1' per partition: held but no longer needed), leaving ('1': leave the group).
-- Heartbeats the member, assigns partition p to the (p mod M)-th live member in name order, renews
-- the member's leases, takes free partitions assigned to it, and gives up releasable ones it holds
-- that are assigned elsewhere. Returns {owned partitions, assigned partitions}.
local member, ttl = ARGV[1], tonumber(ARGV[2])
if ARGV[4] == '1' then
  redis.call('ZREM', KEYS[1], member)
  for i = 2, #KEYS do
    if redis.call('GET', KEYS[i]) == member then redis.call('DEL', KEYS[i]) end
  end
  return {{}, {}}
end
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + ttl, member)
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
table.sort(members)
local index = 0
for i, name in ipairs(members) do
  if name == member then index = i - 1 end
end
local owned, assigned = {}, {}
for p = 0, #KEYS - 2 do
  local key = KEYS[p + 2]
  local mine = (p % #members) == index
  if mine then assigned[#assigned + 1] = p end
  local holder = redis.call('GET', key)
  if holder == member then
    if (not mine) and string.sub(ARGV[3], p + 1, p + 1) == '1' then
      redis.call('DEL', key)
    else
      redis.call('PEXPIRE', key, ttl)
      owned[#owned + 1] = p
    end
  elseif (not holder) and mine then
    redis.call('SET', key, member, 'PX', ttl)
    owned[#owned + 1] = p
  end
end
return {owned, assigned}
"""
)

HAND_BACK: Final = """
-- KEYS: stream. ARGV: group, consumer, the placeholder consumer. Gives every entry pending for consumer
-- to the placeholder with an idle time so long that the next reclaim by any member takes it, then
-- deletes consumer (which had better own nothing: DELCONSUMER drops its pending entries unsettled).
while true do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 100, ARGV[2])
  if #pending == 0 then break end
  for _, entry in ipairs(pending) do
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, entry[1], 'TIME', 1, 'JUSTID')
  end
end
pcall(redis.call, 'XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

REQUEST: Final = """
-- KEYS: request list (also the responders' channel name). ARGV: request, lifetime ms.
-- Queues the request and wakes the responders; with none listening, takes it back and returns 0.
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local listening = redis.call('PUBLISH', KEYS[1], '1')
if listening == 0 then redis.call('LREM', KEYS[1], 1, ARGV[1]) end
return listening
"""


class Scripts:
    """Every script, registered on one client; call as ``await scripts.publish(keys=..., args=...)``."""

    def __init__(self, client: Redis) -> None:
        self.publish = client.register_script(PUBLISH)
        self.partitions = client.register_script(PARTITIONS)
        self.start_id = client.register_script(START_ID)
        self.nack = client.register_script(NACK)
        self.reclaim = client.register_script(RECLAIM)
        self.reset = client.register_script(RESET)
        self.committed = client.register_script(COMMITTED)
        self.coordinate = client.register_script(COORDINATE)
        self.request = client.register_script(REQUEST)
        self.hand_back = client.register_script(HAND_BACK)
