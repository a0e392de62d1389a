package mcptools

import "encoding/json"

// ServerStatus is one configured server as [Toolset.Status] sees it.
type ServerStatus struct {
	Name string
	Type string // TypeStdio, TypeHTTP or TypeInProcess
	// Connected reports a live connection now.
	Connected bool
	// Tools are the server's tools as Claude sees them (names assigned
	// across servers), in the order of Definitions.
	Tools []ToolStatus
}

// ToolStatus is one tool of a [ServerStatus].
type ToolStatus struct {
	Name        string
	Description string
	InputSchema json.RawMessage
}

// Status describes every configured server, sorted by name, for a
// client that shows them (GET /v1/tools, see #18). It reads what the
// Toolset knows; it connects nothing.
func (t *Toolset) Status() []ServerStatus {
	snap := t.snap.Load()
	var defs []definition
	_ = json.Unmarshal(snap.defs, &defs) // built by rebuild from valid JSON
	out := make([]ServerStatus, len(t.servers))
	index := make(map[*server]int, len(t.servers))
	for i, s := range t.servers {
		s.mu.Lock()
		connected := s.conn != nil && s.conn.alive()
		s.mu.Unlock()
		out[i] = ServerStatus{Name: s.cfg.Name, Type: s.cfg.Type, Connected: connected, Tools: []ToolStatus{}}
		index[s] = i
	}
	for _, d := range defs {
		ref, ok := snap.tools[d.Name]
		if !ok {
			continue
		}
		i := index[ref.srv]
		out[i].Tools = append(out[i].Tools, ToolStatus(d))
	}
	return out
}
