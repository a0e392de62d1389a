package mcptools

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/mcptools/mcptest"
)

// TestStatus checks what Status reports of two servers sharing a tool
// name: each server's state and its tools under the names Claude sees,
// with their schemas.
func TestStatus(t *testing.T) {
	t.Parallel()
	peer := newHTTPPeer(t, "http-test")
	ts := open(t, fmt.Sprintf(`{"mcpServers": {
		"local": %s,
		"remote": {"url": %q, "allowedTools": ["echo"]}}}`,
		mcptest.StdioConfig(t, `, "allowedTools": ["echo", "pid"]`), peer.url()), Options{})
	type srv struct {
		Name, Type string
		Connected  bool
		Tools      []string
	}
	summary := func() []srv {
		var out []srv
		for _, s := range ts.Status() {
			x := srv{Name: s.Name, Type: s.Type, Connected: s.Connected}
			for _, tool := range s.Tools {
				if len(tool.InputSchema) == 0 {
					t.Errorf("tool %s has no input schema", tool.Name)
				}
				x.Tools = append(x.Tools, tool.Name)
			}
			out = append(out, x)
		}
		return out
	}
	want := []srv{
		{"local", TypeStdio, true, []string{"local__echo", "pid"}},
		{"remote", TypeHTTP, true, []string{"remote__echo"}},
	}
	if diff := cmp.Diff(want, summary()); diff != "" {
		t.Errorf("Status (-want +got):\n%s", diff)
	}
}
