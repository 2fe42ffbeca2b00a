/// The Lua scripts behind every lifecycle step that must be atomic.
///
/// Each takes the keys of one queue only (they share the `{queue}` hash tag). Scripts read the
/// server clock with `TIME` where "now" matters, so workers on machines with skewed clocks agree.
enum QueueScripts {
    /// Unique, delayed and/or deduplicated enqueue.
    /// KEYS: stream, delayed, job hash, unique lock, enqueued marker. ARGV: id, run-at ms (0 = now),
    /// unique TTL ms (0 = none), marker TTL ms (0 = no deduplication), fields…
    /// Returns {1, id} when enqueued, {0, owner id} when the unique lock is held, {2, id} when a
    /// job with this id was enqueued within the marker's TTL.
    static let enqueue = RedisScript(
        name: "enqueue",
        source: """
            if tonumber(ARGV[4]) > 0 then
              if redis.call('SET', KEYS[5], '1', 'NX', 'PX', ARGV[4]) == false then return {2, ARGV[1]} end
            end
            if tonumber(ARGV[3]) > 0 then
              local owner = redis.call('GET', KEYS[4])
              if owner then return {0, owner} end
              redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[3])
            end
            local fields = {}
            for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
            if tonumber(ARGV[2]) > 0 then
              redis.call('DEL', KEYS[3])
              redis.call('HSET', KEYS[3], unpack(fields))
              redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
            else
              redis.call('XADD', KEYS[1], '*', unpack(fields))
            end
            return {1, ARGV[1]}
            """)

    /// Non-blocking fetch over several queues in priority order, skipping paused ones, taking
    /// at most each queue's cap and the total. Creates a missing consumer group. For each queue
    /// read and found empty, returns the group's last-delivered id: new entries come after it,
    /// which is what a blocking `XREAD` waits for.
    /// KEYS: streams…, paused keys… ARGV: consumer, caps…, total.
    /// Returns {paused flags, {{stream index, entries}, …}, last-delivered ids ('' = not empty or not read)}.
    static let fetch = RedisScript(
        name: "fetch",
        source: """
            local n = #KEYS / 2
            local remaining = tonumber(ARGV[n + 2])
            local paused, result, empty = {}, {}, {}
            for i = 1, n do
              local isPaused = redis.call('EXISTS', KEYS[n + i]) == 1
              paused[i] = isPaused and 1 or 0
              empty[i] = ''
              local take = math.min(remaining, tonumber(ARGV[1 + i]))
              if not isPaused and take > 0 then
                local r = redis.pcall('XREADGROUP', 'GROUP', 'workers', ARGV[1], 'COUNT', take, 'STREAMS', KEYS[i], '>')
                if type(r) == 'table' and r.err then
                  redis.call('XGROUP', 'CREATE', KEYS[i], 'workers', '0', 'MKSTREAM')
                  r = redis.call('XREADGROUP', 'GROUP', 'workers', ARGV[1], 'COUNT', take, 'STREAMS', KEYS[i], '>')
                end
                if r then
                  local entries = r[1][2]
                  remaining = remaining - #entries
                  result[#result + 1] = {i, entries}
                else
                  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[i])) do
                    local info = {}
                    for j = 1, #g, 2 do info[g[j]] = g[j + 1] end
                    if info['name'] == 'workers' then empty[i] = info['last-delivered-id'] end
                  end
                end
              end
            end
            return {paused, result, empty}
            """)

    /// Retry later: acknowledge the entry and schedule the job's new fields.
    /// KEYS: stream, delayed, job hash. ARGV: entry id, run-at ms, job id, fields…
    /// Returns 0 when the entry was no longer pending (someone else already handled it).
    static let retry = RedisScript(
        name: "retry",
        source: """
            if redis.call('XACK', KEYS[1], 'workers', ARGV[1]) == 0 then return 0 end
            redis.call('XDEL', KEYS[1], ARGV[1])
            local fields = {}
            for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
            redis.call('DEL', KEYS[3])
            redis.call('HSET', KEYS[3], unpack(fields))
            redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
            return 1
            """)

    /// Dead-letter: acknowledge, push the record, cap the list, release the unique lock.
    /// KEYS: stream, dead, unique lock. ARGV: entry id, record, cap, job id ('' = no lock).
    static let deadLetter = RedisScript(
        name: "dead-letter",
        source: """
            if redis.call('XACK', KEYS[1], 'workers', ARGV[1]) == 0 then return 0 end
            redis.call('XDEL', KEYS[1], ARGV[1])
            redis.call('LPUSH', KEYS[2], ARGV[2])
            redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
            if ARGV[4] ~= '' and redis.call('GET', KEYS[3]) == ARGV[4] then redis.call('DEL', KEYS[3]) end
            return 1
            """)

    /// Releases a unique lock if the given job still owns it. KEYS: lock. ARGV: job id.
    static let releaseUnique = RedisScript(
        name: "release-unique",
        source: """
            if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
            return 0
            """)

    /// Hands entries a consumer holds back to the stream at once (graceful shutdown), without
    /// counting an attempt. KEYS: stream. ARGV: consumer, entry ids…
    static let handBack = RedisScript(
        name: "hand-back",
        source: """
            local n = 0
            for i = 2, #ARGV do
              local id = ARGV[i]
              local p = redis.call('XPENDING', KEYS[1], 'workers', id, id, 1, ARGV[1])
              if #p == 1 then
                local e = redis.call('XRANGE', KEYS[1], id, id)
                redis.call('XACK', KEYS[1], 'workers', id)
                redis.call('XDEL', KEYS[1], id)
                if #e == 1 and #e[1][2] > 0 then
                  redis.call('XADD', KEYS[1], '*', unpack(e[1][2]))
                  n = n + 1
                end
              end
            end
            return n
            """)

    /// Redelivers stalled entries: those of one consumer (a dead worker), or any whose idle time
    /// exceeds their visibility timeout. Each redelivery counts an attempt; a job out of attempts
    /// goes to the dead list.
    /// KEYS: stream, dead. ARGV: consumer ('' = any), min idle ms, default visibility ms, count,
    /// dead cap, start id. Returns {scanned, requeued, dead, last id}.
    static let reclaim = RedisScript(
        name: "reclaim",
        source: """
            local pending
            if ARGV[1] ~= '' then
              pending = redis.call('XPENDING', KEYS[1], 'workers', 'IDLE', ARGV[2], ARGV[6], '+', ARGV[4], ARGV[1])
            else
              pending = redis.call('XPENDING', KEYS[1], 'workers', 'IDLE', ARGV[2], ARGV[6], '+', ARGV[4])
            end
            local t = redis.call('TIME')
            local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
            local requeued, dead, last = 0, 0, ''
            for _, p in ipairs(pending) do
              local id, owner, idle = p[1], p[2], tonumber(p[3])
              last = id
              local entries = redis.call('XRANGE', KEYS[1], id, id)
              if #entries == 0 then
                redis.call('XACK', KEYS[1], 'workers', id)
              else
                local flat = entries[1][2]
                local job = {}
                for i = 1, #flat, 2 do job[flat[i]] = flat[i + 1] end
                local visibility = tonumber(job['visibility_timeout']) or tonumber(ARGV[3])
                if ARGV[1] ~= '' or idle >= visibility then
                  redis.call('XACK', KEYS[1], 'workers', id)
                  redis.call('XDEL', KEYS[1], id)
                  local attempt = tonumber(job['attempt']) or 1
                  local max = tonumber(job['max_attempts']) or 25
                  local reason
                  if ARGV[1] ~= '' then
                    reason = 'worker ' .. owner .. ' stopped while running the job'
                  else
                    reason = 'no heartbeat for ' .. idle .. ' ms (visibility timeout ' .. visibility .. ' ms) from worker ' .. owner
                  end
                  if attempt >= max then
                    job['error'] = reason .. '; no attempts left'
                    job['failed_at'] = tostring(now)
                    job['worker'] = owner
                    redis.call('LPUSH', KEYS[2], cjson.encode(job))
                    redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[5]) - 1)
                    if job['unique_key'] and job['id'] then
                      local lock = ARGV[7] .. job['unique_key']
                      if redis.call('GET', lock) == job['id'] then redis.call('DEL', lock) end
                    end
                    dead = dead + 1
                  else
                    job['attempt'] = tostring(attempt + 1)
                    local out = {}
                    for k, v in pairs(job) do out[#out + 1] = k; out[#out + 1] = v end
                    redis.call('XADD', KEYS[1], '*', unpack(out))
                    requeued = requeued + 1
                  end
                end
              end
            end
            return {#pending, requeued, dead, last}
            """)

    /// Removes a consumer from the group only if it holds nothing: `XGROUP DELCONSUMER` drops a
    /// consumer's pending entries, which would lose those jobs for good.
    /// KEYS: stream. ARGV: consumer. Returns 1 deleted, 0 absent, -1 still holding entries.
    static let deleteIdleConsumer = RedisScript(
        name: "delete-idle-consumer",
        source: """
            local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', KEYS[1], 'workers')
            if not ok then return 0 end
            for _, c in ipairs(consumers) do
              local info = {}
              for i = 1, #c, 2 do info[c[i]] = c[i + 1] end
              if info['name'] == ARGV[1] then
                if info['pending'] == 0 then
                  redis.call('XGROUP', 'DELCONSUMER', KEYS[1], 'workers', ARGV[1])
                  return 1
                end
                return -1
              end
            end
            return 0
            """)

    /// Moves due delayed jobs into the stream.
    /// KEYS: stream, delayed. ARGV: job hash key prefix, limit.
    /// Returns {moved, ms until the next due job or -1}.
    static let promote = RedisScript(
        name: "promote",
        source: """
            local t = redis.call('TIME')
            local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
            local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
            for _, id in ipairs(ids) do
              local key = ARGV[1] .. id
              local flat = redis.call('HGETALL', key)
              if #flat > 0 then redis.call('XADD', KEYS[1], '*', unpack(flat)) end
              redis.call('DEL', key)
              redis.call('ZREM', KEYS[2], id)
            end
            local nextDue = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
            local wait = -1
            if #nextDue == 2 then wait = math.max(0, tonumber(nextDue[2]) - now) end
            return {#ids, wait}
            """)

    /// One queue's figures in one round trip.
    /// KEYS: stream, delayed, dead, paused.
    /// Returns {ready, pending, delayed, dead, consumers, oldest ready age ms or -1, paused}.
    static let stats = RedisScript(
        name: "stats",
        source: """
            local t = redis.call('TIME')
            local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
            local length = redis.call('XLEN', KEYS[1])
            local pending, consumers, last = 0, 0, '0-0'
            local groups = redis.pcall('XINFO', 'GROUPS', KEYS[1])
            if type(groups) == 'table' and not groups.err then
              for _, g in ipairs(groups) do
                local info = {}
                for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
                if info['name'] == 'workers' then
                  pending = info['pending']
                  consumers = info['consumers']
                  last = info['last-delivered-id']
                end
              end
            end
            local age = -1
            local first = redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', 1)
            if #first > 0 then
              local ms = tonumber(string.match(first[1][1], '^(%d+)'))
              age = math.max(0, now - ms)
            end
            return {length - pending, pending, redis.call('ZCARD', KEYS[2]), redis.call('LLEN', KEYS[3]),
                    consumers, age, redis.call('EXISTS', KEYS[4])}
            """)

    /// Records a worker's heartbeat with the server's clock. KEYS: workers set. ARGV: worker id.
    static let heartbeat = RedisScript(
        name: "heartbeat",
        source: """
            local t = redis.call('TIME')
            local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
            redis.call('ZADD', KEYS[1], now, ARGV[1])
            return now
            """)

    /// Lists workers whose heartbeat is older than the given age. KEYS: workers set. ARGV: max age ms.
    static let staleWorkers = RedisScript(
        name: "stale-workers",
        source: """
            local t = redis.call('TIME')
            local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
            return {now, redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))}
            """)

    /// Takes or renews a lease. KEYS: lease. ARGV: holder, ttl ms. Returns 1 when held.
    static let acquireLease = RedisScript(
        name: "acquire-lease",
        source: """
            local holder = redis.call('GET', KEYS[1])
            if holder == ARGV[1] then
              redis.call('PEXPIRE', KEYS[1], ARGV[2])
              return 1
            end
            if not holder then
              redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
              return 1
            end
            return 0
            """)

    /// Gives a lease up if still held. KEYS: lease. ARGV: holder.
    static let releaseLease = RedisScript(
        name: "release-lease",
        source: """
            if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
            return 0
            """)

    /// Puts one dead letter back into the stream. KEYS: dead, stream. ARGV: record, fields…
    static let retryDead = RedisScript(
        name: "retry-dead",
        source: """
            if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
            local fields = {}
            for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
            redis.call('XADD', KEYS[2], '*', unpack(fields))
            return 1
            """)

    /// Puts up to ARGV[1] dead letters back into the stream, oldest first, with a fresh attempt
    /// count. Unreadable records stay in the list. KEYS: dead, stream. Returns {retried, kept}.
    static let retryAllDead = RedisScript(
        name: "retry-all-dead",
        source: """
            local total = math.min(redis.call('LLEN', KEYS[1]), tonumber(ARGV[1]))
            local retried, kept = 0, 0
            for i = 1, total do
              local raw = redis.call('RPOP', KEYS[1])
              if not raw then break end
              local ok, job = pcall(cjson.decode, raw)
              if ok and type(job) == 'table' and type(job['type']) == 'string' and type(job['payload']) == 'string' then
                job['error'] = nil
                job['failed_at'] = nil
                job['worker'] = nil
                job['attempt'] = '1'
                local out = {}
                for k, v in pairs(job) do out[#out + 1] = k; out[#out + 1] = tostring(v) end
                redis.call('XADD', KEYS[2], '*', unpack(out))
                retried = retried + 1
              else
                redis.call('LPUSH', KEYS[1], raw)
                kept = kept + 1
              end
            end
            return {retried, kept}
            """)

    /// Deletes a waiting entry unless a worker holds it. KEYS: stream. ARGV: entry id.
    /// Returns 1 deleted, 0 absent, -1 running.
    static let deleteWaiting = RedisScript(
        name: "delete-waiting",
        source: """
            local p = redis.call('XPENDING', KEYS[1], 'workers', ARGV[1], ARGV[1], 1)
            if #p > 0 then return -1 end
            return redis.call('XDEL', KEYS[1], ARGV[1])
            """)
}
