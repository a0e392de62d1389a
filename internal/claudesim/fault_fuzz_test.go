package claudesim

import (
	"strings"
	"testing"
	"time"
)

// FuzzParseFault: whatever the user's text, a [[fail …]] marker parses to
// an error status 400-599 with a type, a non-negative count and a reset
// within a day, or is ignored; it never panics.
func FuzzParseFault(f *testing.F) {
	for _, s := range []string{
		"[[fail 529]]", "[[fail 429 times=3 retry-after=1.5 retry-after-ms=20 should-retry=false]]",
		"x [[fail 429 exhausted=input-tokens reset=30]] y", "[[fail 500 mid-stream]]", "[[fail 99]]",
		"[[fail 529 times=-1]]", "[[fail ]]", "[[fail 529", "[[fail 503 reset=1e9]]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		ft, ok := parseFault(text)
		if !ok {
			return
		}
		if !strings.Contains(text, markFail) || ft.err.status < 400 || ft.err.status > 599 || ft.err.typ == "" ||
			ft.times < 0 || ft.reset < 0 || ft.reset > 24*time.Hour {
			t.Fatalf("parseFault(%q) = %+v %+v", text, ft, ft.err)
		}
	})
}
