package claudesim

import (
	"crypto/sha256"
	"encoding/binary"
	"time"
)

// Prompt caching, as documented: a cache_control breakpoint on a tool, a
// system block or a message content block caches the whole prompt prefix
// up to and including that block, in the order tools → system → messages.
// An entry is keyed by a hash of the model and the exact prefix content
// (cache_control itself excluded, so moving a breakpoint keeps the
// prefix). A later request reads the longest unexpired prefix found at a
// breakpoint or at one of the 20 block boundaries before it, and writes an
// entry at each of its breakpoints past that prefix whose prefix reaches
// the model's minimum. Reading refreshes an entry's TTL.

const (
	ttl5m          = 5 * time.Minute
	ttl1h          = time.Hour
	lookbackBlocks = 20
	// maxCacheEntries bounds the cache; past it, expired entries are
	// dropped, and then arbitrary ones.
	maxCacheEntries = 100_000
)

type cacheEntry struct {
	expires time.Time
	ttl     time.Duration
}

// A prefix is a request's prompt cut at block boundaries.
type prefix struct {
	cum    []int               // cumulative tokens through each segment
	hashes [][sha256.Size]byte // prefix hash through each segment; nil when no breakpoints
	bps    []int               // segment indices of breakpoints, ascending
	ttls   []time.Duration     // TTL of each breakpoint
}

// A cachePlan is what a request reads from and writes to the cache.
type cachePlan struct {
	readIdx    int // segment index of the prefix read, or -1
	read       int // tokens read
	creation5m int
	creation1h int
	writes     []int // breakpoint positions (into prefix.bps) to write
}

func (p cachePlan) creation() int { return p.creation5m + p.creation1h }

func ttlOf(cc *cacheControl) time.Duration {
	if cc != nil && cc.TTL == "1h" {
		return ttl1h
	}
	return ttl5m
}

// buildPrefix lays out r's prompt as segments and, when it has
// breakpoints, hashes every prefix.
func buildPrefix(r *request) *prefix {
	p := &prefix{}
	n := len(r.tools) + len(r.system)
	for _, m := range r.messages {
		n += len(m.blocks)
	}
	p.cum = make([]int, 0, n)
	total := 0
	add := func(tokens int, cc *cacheControl) {
		total += tokens
		if cc != nil {
			p.bps = append(p.bps, len(p.cum))
			p.ttls = append(p.ttls, ttlOf(cc))
		}
		p.cum = append(p.cum, total)
	}
	for _, t := range r.tools {
		add(t.tokens, t.cc)
	}
	for _, b := range r.system {
		add(b.tokens, b.cc)
	}
	for _, m := range r.messages {
		for _, b := range m.blocks {
			add(b.tokens, b.cc)
		}
	}
	if r.autoCache != nil && len(p.cum) > 0 {
		last := len(p.cum) - 1
		if len(p.bps) == 0 || p.bps[len(p.bps)-1] != last {
			p.bps = append(p.bps, last)
			p.ttls = append(p.ttls, ttlOf(r.autoCache))
		}
	}
	if len(p.bps) == 0 {
		return p
	}

	// Hash only as far as the last breakpoint.
	end := p.bps[len(p.bps)-1]
	p.hashes = make([][sha256.Size]byte, end+1)
	h := sha256.New()
	var buf []byte
	buf = appendStr(buf, r.model.ID)
	i := 0
	emit := func() {
		h.Write(buf)
		buf = buf[:0]
		h.Sum(p.hashes[i][:0])
		i++
	}
	for _, t := range r.tools {
		if i > end {
			return p
		}
		buf = append(buf, 'T')
		buf = appendStr(buf, string(t.canon))
		emit()
	}
	for _, b := range r.system {
		if i > end {
			return p
		}
		buf = append(buf, 'S')
		buf = b.appendCanon(buf)
		emit()
	}
	for _, m := range r.messages {
		for j, b := range m.blocks {
			if i > end {
				return p
			}
			if j == 0 {
				buf = append(buf, 'M')
				buf = appendStr(buf, m.role)
			}
			buf = append(buf, 'B')
			buf = b.appendCanon(buf)
			emit()
		}
	}
	return p
}

func appendStr(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

// appendCanon appends the block's content, without cache_control.
func (b *block) appendCanon(buf []byte) []byte {
	if b.cleared {
		// Cleared by context editing: the prompt changed here.
		buf = append(buf, 'X')
	}
	buf = appendStr(buf, b.typ)
	switch b.typ {
	case "text":
		buf = appendStr(buf, b.text)
	case "tool_use":
		buf = appendStr(buf, b.id)
		buf = appendStr(buf, b.name)
		buf = appendStr(buf, string(b.input))
	case "tool_result":
		buf = appendStr(buf, b.toolUseID)
		if b.isError {
			buf = append(buf, 1)
		}
		buf = appendStr(buf, b.text)
	case "thinking":
		buf = appendStr(buf, b.thinking)
		buf = appendStr(buf, b.signature)
	default:
		buf = appendStr(buf, string(b.raw))
	}
	return buf
}

// planCacheLocked works out what p reads and writes, without changing the
// cache. s.mu must be held.
func (s *Server) planCacheLocked(p *prefix, minTokens int, now time.Time) cachePlan {
	plan := cachePlan{readIdx: -1}
	if len(p.bps) == 0 {
		return plan
	}
	for i := len(p.bps) - 1; i >= 0; i-- {
		bp := p.bps[i]
		for k := bp; k >= 0 && k > bp-lookbackBlocks; k-- {
			if k <= plan.readIdx {
				break
			}
			if e, ok := s.cache[p.hashes[k]]; ok && now.Before(e.expires) {
				plan.readIdx = k
				break
			}
		}
	}
	if plan.readIdx >= 0 {
		plan.read = p.cum[plan.readIdx]
	}
	prev := plan.read
	for i, bp := range p.bps {
		if bp <= plan.readIdx || p.cum[bp] < minTokens {
			continue
		}
		n := p.cum[bp] - prev
		if p.ttls[i] == ttl1h {
			plan.creation1h += n
		} else {
			plan.creation5m += n
		}
		prev = p.cum[bp]
		plan.writes = append(plan.writes, i)
	}
	return plan
}

// commitCacheLocked refreshes what plan read and stores what it writes.
// s.mu must be held.
func (s *Server) commitCacheLocked(p *prefix, plan cachePlan, now time.Time) {
	if plan.readIdx >= 0 {
		key := p.hashes[plan.readIdx]
		e := s.cache[key]
		e.expires = now.Add(e.ttl)
		s.cache[key] = e
	}
	if len(plan.writes) > 0 && len(s.cache) >= maxCacheEntries {
		for k, e := range s.cache {
			if !now.Before(e.expires) {
				delete(s.cache, k)
			}
		}
		for k := range s.cache {
			if len(s.cache) < maxCacheEntries {
				break
			}
			delete(s.cache, k)
		}
	}
	for _, i := range plan.writes {
		ttl := p.ttls[i]
		s.cache[p.hashes[p.bps[i]]] = cacheEntry{expires: now.Add(ttl), ttl: ttl}
	}
}
