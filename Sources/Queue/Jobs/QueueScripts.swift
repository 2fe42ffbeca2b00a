/// The Lua scripts behind every lifecycle step that must be atomic.
///
/// Each takes the keys of one queue only (they share the `{queue}` hash tag). Scripts read the
/// server clock with `TIME` where "now" matters, so workers on machines with skewed clocks agree:
/// callers pass delays, never due times of their own clock. A script that moves a job writes its
/// destination before it removes the source, so an error halfway (a key of the wrong type, a full
/// Redis) leaves the job where it was rather than nowhere.
enum QueueScripts {
    /// `now`: the server's time in milliseconds, for scripts that need it.
    private static let serverNow = """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        """

    /// Unique, delayed and/or deduplicated enqueue.
    /// KEYS: stream, delayed, job hash, unique lock, enqueued marker. ARGV: id, run-at ms (0 = now),
    /// delay ms from the server's now (0 = none), unique TTL ms (0 = none), marker TTL ms (0 = no
    /// deduplication), fields…
    /// Returns {1, id} when enqueued, {0, owner id} when the unique lock is held, {2, id} when a
    /// job with this id was enqueued within the marker's TTL. The lock lives `unique TTL` past the
    /// time the job is due; lock and marker are set only once the job is written.
    static let enqueue = RedisScript(
        name: "enqueue",
        source: """
            if tonumber(ARGV[5]) > 0 and redis.call('EXISTS', KEYS[5]) == 1 then
              -- A write all the same (the marker as it was): a WAIT after this call then waits
              -- for the replication of the first enqueue too, which came before it.
              redis.call('SET', KEYS[5], '1', 'KEEPTTL')
              return {2, ARGV[1]}
            end
            local uniqueTTL = tonumber(ARGV[4])
            if uniqueTTL > 0 then
              local owner = redis.call('GET', KEYS[4])
              if owner then return {0, owner} end
            end
            \(serverNow)
            local runAt = tonumber(ARGV[2])
            if tonumber(ARGV[3]) > 0 then runAt = now + tonumber(ARGV[3]) end
            local fields = {}
            for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
            if runAt > now then
              redis.call('DEL', KEYS[3])
              redis.call('HSET', KEYS[3], unpack(fields))
              redis.call('ZADD', KEYS[2], runAt, ARGV[1])
            else
              redis.call('XADD', KEYS[1], '*', unpack(fields))
            end
            if uniqueTTL > 0 then redis.call('SET', KEYS[4], ARGV[1], 'PX', uniqueTTL + math.max(0, runAt - now)) end
            if tonumber(ARGV[5]) > 0 then redis.call('SET', KEYS[5], '1', 'PX', ARGV[5]) end
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

    /// Retry later: schedule the job's new fields `delay` after the server's now, then
    /// acknowledge the entry, and keep the job's unique lock (if it still owns it) for at least
    /// `delay` + `unique TTL`.
    /// KEYS: stream, delayed, job hash, unique lock. ARGV: entry id, delay ms, job id, unique TTL
    /// ms (0 = no lock), fields…
    /// Returns 0 when the entry was no longer pending (someone else already handled it).
    static let retry = RedisScript(
        name: "retry",
        source: """
            if #redis.call('XPENDING', KEYS[1], 'workers', ARGV[1], ARGV[1], 1) == 0 then return 0 end
            \(serverNow)
            local delay = tonumber(ARGV[2])
            local fields = {}
            for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
            redis.call('DEL', KEYS[3])
            redis.call('HSET', KEYS[3], unpack(fields))
            redis.call('ZADD', KEYS[2], now + delay, ARGV[3])
            redis.call('XACK', KEYS[1], 'workers', ARGV[1])
            redis.call('XDEL', KEYS[1], ARGV[1])
            local ttl = tonumber(ARGV[4])
            if ttl > 0 and redis.call('GET', KEYS[4]) == ARGV[3] and redis.call('PTTL', KEYS[4]) < delay + ttl then
              redis.call('PEXPIRE', KEYS[4], delay + ttl)
            end
            return 1
            """)

    /// Dead-letter: push the record and cap the list, then acknowledge the entry and release the
    /// unique lock. KEYS: stream, dead, unique lock. ARGV: entry id, record, cap, job id ('' = no lock).
    /// Returns 0 when the entry was no longer pending.
    static let deadLetter = RedisScript(
        name: "dead-letter",
        source: """
            if #redis.call('XPENDING', KEYS[1], 'workers', ARGV[1], ARGV[1], 1) == 0 then return 0 end
            redis.call('LPUSH', KEYS[2], ARGV[2])
            redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
            redis.call('XACK', KEYS[1], 'workers', ARGV[1])
            redis.call('XDEL', KEYS[1], ARGV[1])
            if ARGV[4] ~= '' and redis.call('GET', KEYS[3]) == ARGV[4] then redis.call('DEL', KEYS[3]) end
            return 1
            """)

    /// Acknowledges a unique job and releases its lock, only if this delivery was still pending:
    /// a stale acknowledgement (the entry was reclaimed and redelivered meanwhile) must not free
    /// the lock the redelivery runs under. KEYS: stream, lock. ARGV: entry id, job id.
    static let acknowledgeUnique = RedisScript(
        name: "acknowledge-unique",
        source: """
            if redis.call('XACK', KEYS[1], 'workers', ARGV[1]) == 0 then return 0 end
            redis.call('XDEL', KEYS[1], ARGV[1])
            if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
            return 1
            """)

    /// Makes a unique lock live at least `ttl` more ms if the given job still owns it (a held
    /// job's heartbeat). KEYS: lock. ARGV: job id, ttl ms.
    static let extendUnique = RedisScript(
        name: "extend-unique",
        source: """
            if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
            local ttl = redis.call('PTTL', KEYS[1])
            if ttl >= 0 and ttl < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
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
    /// counting an attempt. An entry added without an `id` keeps the id of its first delivery.
    /// KEYS: stream. ARGV: consumer, entry ids…
    static let handBack = RedisScript(
        name: "hand-back",
        source: """
            local n = 0
            for i = 2, #ARGV do
              local id = ARGV[i]
              local p = redis.call('XPENDING', KEYS[1], 'workers', id, id, 1, ARGV[1])
              if #p == 1 then
                local e = redis.call('XRANGE', KEYS[1], id, id)
                -- An entry too large to re-add (Lua's unpack) stays pending: the reclaimer dead-letters it.
                if #e == 1 and #e[1][2] > 0 and #e[1][2] <= 128 then
                  local fields = e[1][2]
                  local named = false
                  for j = 1, #fields, 2 do
                    if fields[j] == 'id' then
                      if fields[j + 1] == '' then fields[j + 1] = id end
                      named = true
                    end
                  end
                  if not named then fields[#fields + 1] = 'id'; fields[#fields + 1] = id end
                  redis.call('XADD', KEYS[1], '*', unpack(fields))
                  n = n + 1
                end
                redis.call('XACK', KEYS[1], 'workers', id)
                redis.call('XDEL', KEYS[1], id)
              end
            end
            return n
            """)

    /// Redelivers stalled entries: those of one consumer (a dead worker), or any whose idle time
    /// exceeds their visibility timeout. Each redelivery counts an attempt; a job out of attempts
    /// goes to the dead list. A job's visibility timeout and attempts are its envelope's, else
    /// its type's as the workers published them (`policies`), else the defaults. For one
    /// consumer, nothing happens unless the consumer itself has been idle at least `min idle`
    /// (it fetched nothing meanwhile: it is really gone), and only entries idle that long move.
    /// KEYS: stream, dead, policies. ARGV: consumer ('' = any), min idle ms, default visibility
    /// ms, count, dead cap, start id. Returns {scanned, requeued, dead, last id, {unique key, job
    /// id}…}: the unique locks of dead-lettered jobs, for the caller to release (a script may
    /// touch only the keys it declares, and these are known only once the entries are read).
    static let reclaim = RedisScript(
        name: "reclaim",
        source: """
            local consumer = ARGV[1]
            local pending
            if consumer ~= '' then
              local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', KEYS[1], 'workers')
              if not ok then return {0, 0, 0, '', {}} end
              local consumerIdle = nil
              for _, c in ipairs(consumers) do
                local info = {}
                for i = 1, #c, 2 do info[c[i]] = c[i + 1] end
                if info['name'] == consumer then consumerIdle = tonumber(info['idle']) end
              end
              if consumerIdle == nil or consumerIdle < tonumber(ARGV[2]) then return {0, 0, 0, '', {}} end
              pending = redis.call('XPENDING', KEYS[1], 'workers', 'IDLE', ARGV[2], ARGV[6], '+', ARGV[4], consumer)
            else
              pending = redis.call('XPENDING', KEYS[1], 'workers', 'IDLE', ARGV[2], ARGV[6], '+', ARGV[4])
            end
            \(serverNow)
            local policies = {}
            local requeued, dead, last = 0, 0, ''
            local locks = {}
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
                if job['id'] == nil or job['id'] == '' then job['id'] = id end
                local policy = {}
                local jobType = job['type']
                if jobType then
                  if policies[jobType] == nil then
                    policies[jobType] = {}
                    local found, raw = pcall(redis.call, 'HGET', KEYS[3], jobType)
                    if found and raw then
                      local ok, decoded = pcall(cjson.decode, raw)
                      if ok and type(decoded) == 'table' then policies[jobType] = decoded end
                    end
                  end
                  policy = policies[jobType]
                end
                local visibility = tonumber(job['visibility_timeout']) or tonumber(policy['visibility_timeout']) or tonumber(ARGV[3])
                if consumer ~= '' or idle >= visibility then
                  local attempt = tonumber(job['attempt']) or 1
                  -- More than 64 fields cannot be re-added (Lua's unpack): dead-letter it.
                  local oversized = #flat > 128
                  local max = tonumber(job['max_attempts']) or tonumber(policy['max_attempts']) or 25
                  local reason
                  if consumer ~= '' then
                    reason = 'worker ' .. owner .. ' stopped while running the job'
                  else
                    reason = 'no heartbeat for ' .. idle .. ' ms (visibility timeout ' .. visibility .. ' ms) from worker ' .. owner
                  end
                  if oversized then reason = reason .. '; the entry has more than 64 fields' end
                  if oversized or attempt >= max then
                    if not oversized then reason = reason .. '; no attempts left' end
                    job['error'] = reason
                    job['failed_at'] = tostring(now)
                    job['worker'] = owner
                    redis.call('LPUSH', KEYS[2], cjson.encode(job))
                    redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[5]) - 1)
                    if job['unique_key'] then
                      locks[#locks + 1] = job['unique_key']
                      locks[#locks + 1] = job['id']
                    end
                    dead = dead + 1
                  else
                    job['attempt'] = tostring(attempt + 1)
                    local out = {}
                    for k, v in pairs(job) do out[#out + 1] = k; out[#out + 1] = v end
                    redis.call('XADD', KEYS[1], '*', unpack(out))
                    requeued = requeued + 1
                  end
                  redis.call('XACK', KEYS[1], 'workers', id)
                  redis.call('XDEL', KEYS[1], id)
                end
              end
            end
            return {#pending, requeued, dead, last, locks}
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

    /// Moves the given delayed jobs into the stream if they are still waiting and due, and
    /// names the next due ones: a script may touch only the keys it declares, so the caller
    /// comes back with those ids and their hashes' keys.
    /// KEYS: stream, delayed, then the job hash of each id. ARGV: limit, ids…
    /// Returns {moved, {due ids, at most limit}, ms until the next due job or -1}.
    static let promote = RedisScript(
        name: "promote",
        source: """
            \(serverNow)
            local moved = 0
            for i = 2, #ARGV do
              local score = redis.call('ZSCORE', KEYS[2], ARGV[i])
              if score and tonumber(score) <= now then
                local flat = redis.call('HGETALL', KEYS[i + 1])
                if #flat > 0 then redis.call('XADD', KEYS[1], '*', unpack(flat)) end
                redis.call('DEL', KEYS[i + 1])
                redis.call('ZREM', KEYS[2], ARGV[i])
                moved = moved + 1
              end
            end
            local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
            local nextDue = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
            local wait = -1
            if #nextDue == 2 then wait = math.max(0, tonumber(nextDue[2]) - now) end
            return {moved, due, wait}
            """)

    /// One queue's figures in one round trip.
    /// KEYS: stream, delayed, dead, paused.
    /// Returns {ready, pending, delayed, dead, consumers, oldest ready age ms or -1, paused}.
    static let stats = RedisScript(
        name: "stats",
        source: """
            \(serverNow)
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

    /// Records one throughput sample of a queue: how many entries its stream has taken in all
    /// (`entries-added`, Redis 7) and how many have left it (added minus its length: acked,
    /// retried or dead-lettered), at the server's time; drops samples older than the span.
    /// KEYS: stream, throughput set. ARGV: span ms. Returns {added, finished}, or {} when the
    /// stream does not exist or the server does not count additions.
    static let sampleThroughput = RedisScript(
        name: "sample-throughput",
        source: """
            local info = redis.pcall('XINFO', 'STREAM', KEYS[1])
            if type(info) ~= 'table' or info.err then return {} end
            local added
            for i = 1, #info, 2 do
              if info[i] == 'entries-added' then added = info[i + 1] end
            end
            if not added then return {} end
            \(serverNow)
            local finished = added - redis.call('XLEN', KEYS[1])
            local span = tonumber(ARGV[1])
            redis.call('ZADD', KEYS[2], now, now .. ':' .. added .. ':' .. finished)
            redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - span))
            redis.call('PEXPIRE', KEYS[2], span)
            return {added, finished}
            """)

    /// Records a worker's heartbeat with the server's clock. KEYS: workers set. ARGV: worker id.
    static let heartbeat = RedisScript(
        name: "heartbeat",
        source: """
            \(serverNow)
            redis.call('ZADD', KEYS[1], now, ARGV[1])
            return now
            """)

    /// Lists workers whose heartbeat is older than the given age. KEYS: workers set. ARGV: max age ms.
    static let staleWorkers = RedisScript(
        name: "stale-workers",
        source: """
            \(serverNow)
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

    /// Puts one dead letter back into the stream and retakes its unique lock, unless another job
    /// holds that lock. KEYS: dead, stream, unique lock. ARGV: record, job id, unique TTL ms (0 =
    /// no lock), fields… Returns {1} when retried, {0} when the record is gone, {-1, owner} when
    /// the lock is held by job `owner`.
    static let retryDead = RedisScript(
        name: "retry-dead",
        source: """
            if not redis.call('LPOS', KEYS[1], ARGV[1]) then return {0} end
            local ttl = tonumber(ARGV[3])
            if ttl > 0 then
              local owner = redis.call('GET', KEYS[3])
              if owner and owner ~= ARGV[2] then return {-1, owner} end
            end
            local fields = {}
            for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
            redis.call('XADD', KEYS[2], '*', unpack(fields))
            redis.call('LREM', KEYS[1], 1, ARGV[1])
            if ttl > 0 then redis.call('SET', KEYS[3], ARGV[2], 'PX', ttl) end
            return {1}
            """)

    /// Puts the given dead letters back into the stream, oldest first, with a fresh attempt
    /// count, retaking their unique locks, as long as the list's tail is the record expected
    /// next (another client may have changed the list since the caller read it). Unreadable
    /// records, and those whose unique key another job holds, stay in the list (moved to its
    /// head). KEYS: dead, stream, then the unique locks the records name. ARGV: unique TTL ms,
    /// then for each record, oldest first: the record, the index in KEYS of its lock (0: none).
    /// Returns {retried, kept}.
    static let retryAllDead = RedisScript(
        name: "retry-all-dead",
        source: """
            local retried, kept = 0, 0
            for i = 2, #ARGV - 1, 2 do
              local raw = redis.call('LINDEX', KEYS[1], -1)
              if raw ~= ARGV[i] then break end
              local ok, job = pcall(cjson.decode, raw)
              local retry = ok and type(job) == 'table' and type(job['type']) == 'string' and type(job['payload']) == 'string'
              local lock = nil
              local lockIndex = tonumber(ARGV[i + 1])
              if retry and type(job['unique_key']) == 'string' and type(job['id']) == 'string' then
                -- A lock the caller did not see (its reading of the record differed) is kept
                -- dead rather than retried without its lock.
                if lockIndex > 0 then lock = KEYS[lockIndex] else retry = false end
              end
              if lock then
                local owner = redis.call('GET', lock)
                if owner and owner ~= job['id'] then retry = false end
              end
              if retry then
                job['error'] = nil
                job['failed_at'] = nil
                job['worker'] = nil
                job['attempt'] = '1'
                local out = {}
                for k, v in pairs(job) do out[#out + 1] = k; out[#out + 1] = tostring(v) end
                redis.call('XADD', KEYS[2], '*', unpack(out))
                redis.call('RPOP', KEYS[1])
                if lock then redis.call('SET', lock, job['id'], 'PX', ARGV[1]) end
                retried = retried + 1
              else
                redis.call('RPOPLPUSH', KEYS[1], KEYS[1])
                kept = kept + 1
              end
            end
            return {retried, kept}
            """)

    /// Deletes a queue's dead letters and says how many there were, in one step.
    /// KEYS: dead. Returns the count.
    static let purgeDead = RedisScript(
        name: "purge-dead",
        source: """
            local n = redis.call('LLEN', KEYS[1])
            redis.call('DEL', KEYS[1])
            return n
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
