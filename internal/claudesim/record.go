package claudesim

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

// A Recorded is one request the Server received, kept for tests.
type Recorded struct {
	// Time is when the request arrived, by Config.Now.
	Time   time.Time
	Method string
	Path   string
	// Header is a copy of the request headers, with the values of
	// x-api-key and Authorization replaced by "REDACTED".
	Header http.Header
	// Body is the request body as received. It must not be modified.
	Body []byte
	// Status is the HTTP status answered, or 499 if the client went away
	// before the status was sent.
	Status    int
	RequestID string
	// Model and Stream are the request's model and stream fields, once it
	// parsed.
	Model  string
	Stream bool
	// Usage is the usage reported by an answered POST /v1/messages.
	Usage Usage
}

// A Turn is one message of a recorded request, reduced to what tests
// compare.
type Turn struct {
	Role string
	// Text joins the message's text blocks and the text of its
	// tool_result blocks with "\n".
	Text string
	// Blocks lists the types of the message's content blocks in order,
	// e.g. [thinking text tool_use]; a string content is [text].
	Blocks []string
}

// Turns decodes the messages of the recorded request body. It returns nil
// if the body has none.
func (r Recorded) Turns() []Turn {
	var body struct {
		Messages []wireMessage `json:"messages"`
	}
	if json.Unmarshal(r.Body, &body) != nil {
		return nil
	}
	turns := make([]Turn, 0, len(body.Messages))
	for _, m := range body.Messages {
		t := Turn{Role: m.Role}
		var s string
		if json.Unmarshal(m.Content, &s) == nil {
			t.Text, t.Blocks = s, []string{"text"}
			turns = append(turns, t)
			continue
		}
		var blocks []wireBlock
		_ = json.Unmarshal(m.Content, &blocks)
		var texts []string
		for _, b := range blocks {
			t.Blocks = append(t.Blocks, b.Type)
			switch b.Type {
			case "text":
				if b.Text != nil {
					texts = append(texts, *b.Text)
				}
			case "tool_result":
				if text, _, err := resultContent("", b.Content); err == nil {
					texts = append(texts, text)
				}
			}
		}
		t.Text = strings.Join(texts, "\n")
		turns = append(turns, t)
	}
	return turns
}

// Counts are request and token counts.
type Counts struct {
	// Requests counts every request received, answered or not.
	Requests int
	// Messages counts POST /v1/messages answered 200: model calls.
	Messages int
	// The token counts sum the usage of the answered model calls.
	InputTokens              int
	CacheCreationInputTokens int
	CacheReadInputTokens     int
	OutputTokens             int
}

func (c *Counts) add(status int, path string, u Usage) {
	c.Requests++
	if status == http.StatusOK && path == "/v1/messages" {
		c.Messages++
		c.InputTokens += u.InputTokens
		c.CacheCreationInputTokens += u.CacheCreationInputTokens
		c.CacheReadInputTokens += u.CacheReadInputTokens
		c.OutputTokens += u.OutputTokens
	}
}

// MinuteStats are the counts of one clock minute.
type MinuteStats struct {
	// Start is the start of the minute, by Config.Now.
	Start time.Time
	Counts
}

// Stats are a Server's counters since New or the last Reset.
type Stats struct {
	Counts
	// ByStatus counts requests by HTTP status answered.
	ByStatus map[int]int
	// Minutes holds the counts of up to the last 60 minutes that saw
	// requests, oldest first.
	Minutes []MinuteStats
}

const keptMinutes = 60

// Requests returns the recorded requests, oldest first: at most
// Config.MaxRecorded of them, and only the most recent ones when their
// bodies pass Config.MaxRecordedBytes.
func (s *Server) Requests() []Recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.records)
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.ByStatus = maps.Clone(s.stats.ByStatus)
	st.Minutes = slices.Clone(s.stats.Minutes)
	return st
}

// Reset forgets the recorded requests and zeroes the counters. The prompt
// cache and the rate limits are kept.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records, s.recordBytes = nil, 0
	s.stats = Stats{ByStatus: map[int]int{}}
}

func (s *Server) record(x *exchange, at time.Time, status int) {
	path := x.req.URL.Path
	minute := at.Truncate(time.Minute)
	s.mu.Lock()
	s.stats.add(status, path, x.usage)
	s.stats.ByStatus[status]++
	ms := s.stats.Minutes
	if n := len(ms); n == 0 || !ms[n-1].Start.Equal(minute) {
		ms = append(ms, MinuteStats{Start: minute})
		if len(ms) > keptMinutes {
			ms = slices.Delete(ms, 0, len(ms)-keptMinutes)
		}
	}
	ms[len(ms)-1].add(status, path, x.usage)
	s.stats.Minutes = ms
	keep := s.cfg.MaxRecorded >= 0
	s.mu.Unlock()
	if !keep {
		return
	}

	h := x.req.Header.Clone()
	for _, k := range []string{"X-Api-Key", "Authorization"} {
		if _, ok := h[k]; ok {
			h[k] = []string{"REDACTED"}
		}
	}
	rec := Recorded{
		Time:      at,
		Method:    x.req.Method,
		Path:      path,
		Header:    h,
		Body:      x.body,
		Status:    status,
		RequestID: x.requestID,
		Model:     x.model,
		Stream:    x.stream,
		Usage:     x.usage,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = append(s.records, rec)
	s.recordBytes += len(rec.Body)
	drop := 0
	for len(s.records)-drop > s.cfg.MaxRecorded ||
		(s.recordBytes > s.cfg.MaxRecordedBytes && len(s.records)-drop > 1) {
		s.recordBytes -= len(s.records[drop].Body)
		drop++
	}
	if drop > 0 {
		s.records = slices.Delete(s.records, 0, drop)
	}
}
