package auth

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseKeyFile(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name string
		file string
		want []Key
		err  string // a substring of the error; "" for none
	}{
		{"empty", "", nil, ""},
		{"comments and blanks", "# keys\n\n   \n# more\n", nil, ""},
		{"one key", `{"id":"abcdefgh2345","tenant":"acme","sha256":"` + hash + `"}`,
			[]Key{{ID: "abcdefgh2345", Tenant: "acme", Hash: hash}}, ""},
		{"two keys with CRLF", `{"id":"abcdefgh2345","tenant":"acme","name":"ci","sha256":"` + hash + `","limits":{"rpm":60}}` + "\r\n" +
			`  {"id":"bbcdefgh2345","tenant":"globex","sha256":"` + hash + `"}  ` + "\r\n",
			[]Key{
				{ID: "abcdefgh2345", Tenant: "acme", Name: "ci", Hash: hash, Limits: Limits{RPM: 60}},
				{ID: "bbcdefgh2345", Tenant: "globex", Hash: hash},
			}, ""},
		{"unknown field", `{"id":"abcdefgh2345","tenant":"acme","sha265":"` + hash + `"}`, nil, "line 1: json: unknown field"},
		{"created is not a file field", `{"id":"abcdefgh2345","tenant":"acme","sha256":"` + hash + `","created":"2026-01-01T00:00:00Z"}`, nil, "unknown field"},
		{"no hash", `{"id":"abcdefgh2345","tenant":"acme"}`, nil, "sha256"},
		{"upper-case hash", `{"id":"abcdefgh2345","tenant":"acme","sha256":"` + strings.ToUpper(hash) + `"}`, nil, "sha256"},
		{"short hash", `{"id":"abcdefgh2345","tenant":"acme","sha256":"ab"}`, nil, "sha256"},
		{"bad id", `{"id":"ABCDEFGH2345","tenant":"acme","sha256":"` + hash + `"}`, nil, "key id"},
		{"bad tenant", `{"id":"abcdefgh2345","tenant":"a:b","sha256":"` + hash + `"}`, nil, "invalid tenant"},
		{"negative limit", `{"id":"abcdefgh2345","tenant":"acme","sha256":"` + hash + `","limits":{"itpm":-1}}`, nil, "negative"},
		{"duplicate", "#\n" + `{"id":"abcdefgh2345","tenant":"acme","sha256":"` + hash + `"}` + "\n" +
			`{"id":"abcdefgh2345","tenant":"b","sha256":"` + hash + `"}`, nil, "line 3: key abcdefgh2345 already on line 2"},
		{"trailing text", `{"id":"abcdefgh2345","tenant":"acme","sha256":"` + hash + `"} x`, nil, "after the JSON"},
		{"array", `[{"id":"abcdefgh2345","tenant":"acme","sha256":"` + hash + `"}]`, nil, "line 1"},
		{"null", `null`, nil, "key id"},
		{"long line", `{"name":"` + strings.Repeat("x", 5000) + `"}`, nil, "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseKeyFile([]byte(tc.file))
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrKeyFile) {
				t.Fatalf("ParseKeyFile = %v, want ErrKeyFile holding %q", err, tc.err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseKeyFile (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFileLineRoundTrip(t *testing.T) {
	_, id, hash := newKey()
	k := Key{ID: id, Tenant: "acme", Name: `a "quoted" <name> ü`, Hash: hash, Limits: Limits{RPM: 1, ITPM: 2, OTPM: 3}}
	line := FileLine(k)
	if strings.Contains(line, "\n") {
		t.Fatalf("FileLine = %q holds a newline", line)
	}
	got, err := ParseKeyFile([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Key{k}, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}
