package mcptools

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAssignNames(t *testing.T) {
	long := strings.Repeat("x", 70)
	tests := []struct {
		name  string
		tools []toolKey
		want  map[string]toolKey
	}{
		{
			name:  "no clash",
			tools: []toolKey{{"a", "read"}, {"b", "write"}},
			want:  map[string]toolKey{"read": {"a", "read"}, "write": {"b", "write"}},
		},
		{
			name:  "clash namespaces both, others keep their names",
			tools: []toolKey{{"github", "search"}, {"jira", "search"}, {"jira", "create_issue"}},
			want: map[string]toolKey{
				"github__search": {"github", "search"},
				"jira__search":   {"jira", "search"},
				"create_issue":   {"jira", "create_issue"},
			},
		},
		{
			name:  "sanitised",
			tools: []toolKey{{"s", "files.read/v2"}, {"s", "héllo"}},
			want:  map[string]toolKey{"files_read_v2": {"s", "files.read/v2"}, "h_llo": {"s", "héllo"}},
		},
		{
			name:  "clash after sanitising",
			tools: []toolKey{{"a", "get.x"}, {"b", "get_x"}},
			want:  map[string]toolKey{"a__get_x": {"a", "get.x"}, "b__get_x": {"b", "get_x"}},
		},
		{
			name:  "clash within one server",
			tools: []toolKey{{"a", "get.x"}, {"a", "get_x"}},
			want:  map[string]toolKey{"get_x_" + hash8("a", "get.x"): {"a", "get.x"}, "get_x_" + hash8("a", "get_x"): {"a", "get_x"}},
		},
		{
			name:  "too long",
			tools: []toolKey{{"a", long}},
			want:  map[string]toolKey{long[:55] + "_" + hash8("a", long): {"a", long}},
		},
		{
			name:  "namespaced too long",
			tools: []toolKey{{"server.with.a.long.name", long[:40]}, {"other", long[:40]}},
			want: map[string]toolKey{
				("server_with_a_long_name__" + long[:40])[:55] + "_" + hash8("server.with.a.long.name", long[:40]): {"server.with.a.long.name", long[:40]},
				"other__" + long[:40]: {"other", long[:40]},
			},
		},
		{
			name:  "empty name",
			tools: []toolKey{{"a", ""}},
			want:  map[string]toolKey{"_": {"a", ""}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := assignNames(tc.tools)
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(toolKey{})); diff != "" {
				t.Errorf("names (-want +got):\n%s", diff)
			}
			for n := range got {
				if !validName(n) {
					t.Errorf("name %q (%d bytes) is not valid for Claude", n, len(n))
				}
			}
			// The same tools in the same order give the same names.
			if again := assignNames(tc.tools); !cmp.Equal(got, again, cmp.AllowUnexported(toolKey{})) {
				t.Error("names changed on a second run")
			}
		})
	}
}

func hash8(server, tool string) string {
	n := hashedName("", toolKey{server, tool})
	return n[len(n)-8:]
}
