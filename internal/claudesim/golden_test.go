package claudesim_test

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/tools/txtar"

	"github.com/lambdagent/lambdagent/internal/claudesim"
)

var update = flag.Bool("update", false, "rewrite the response sections of testdata/*.txtar")

// ids matches the random part of the ids the simulator makes.
var ids = regexp.MustCompile(`\b(msg|toolu|req)_01[0-9A-Za-z]{22}\b`)

func normalise(s string) string { return ids.ReplaceAllString(s, "${1}_01NORMALISED") }

// TestGolden replays the request of each testdata/*.txtar file against a
// fresh Server and compares the answer, byte for byte once ids are
// normalised, with the file's response section. The archive comment may
// set "path: …" (default /v1/messages). Run with -update to rewrite the
// responses.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txtar")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			ar, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			path := "/v1/messages"
			sc := bufio.NewScanner(bytes.NewReader(ar.Comment))
			for sc.Scan() {
				if p, ok := strings.CutPrefix(sc.Text(), "path: "); ok {
					path = strings.TrimSpace(p)
				}
			}
			body := section(ar, "request.json")
			if body == nil {
				t.Fatal("no request.json section")
			}

			clock := time.Date(2026, time.November, 24, 12, 0, 0, 0, time.UTC)
			sim := claudesim.New(claudesim.Config{Now: func() time.Time { return clock }})
			req := httptest.NewRequest("POST", path, bytes.NewReader(body))
			req.Header.Set("content-type", "application/json")
			req.Header.Set("anthropic-version", "2023-06-01")
			req.Header.Set("x-api-key", "sk-golden")
			rec := httptest.NewRecorder()
			sim.ServeHTTP(rec, req)

			var got strings.Builder
			fmt.Fprintf(&got, "status: %d\n", rec.Code)
			for _, h := range []string{"Content-Type", "Retry-After"} {
				if v := rec.Header().Get(h); v != "" {
					fmt.Fprintf(&got, "%s: %s\n", strings.ToLower(h), v)
				}
			}
			got.WriteString("\n")
			got.WriteString(normalise(rec.Body.String()))
			if !strings.HasSuffix(got.String(), "\n") {
				got.WriteString("\n")
			}

			if *update {
				setSection(ar, "response", []byte(got.String()))
				if err := os.WriteFile(file, txtar.Format(ar), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want := section(ar, "response")
			if diff := cmp.Diff(string(want), got.String()); diff != "" {
				t.Errorf("response (-want +got):\n%s\nrun go test ./internal/claudesim -run TestGolden -update to accept", diff)
			}
		})
	}
}

func section(ar *txtar.Archive, name string) []byte {
	for _, f := range ar.Files {
		if f.Name == name {
			return f.Data
		}
	}
	return nil
}

func setSection(ar *txtar.Archive, name string, data []byte) {
	for i, f := range ar.Files {
		if f.Name == name {
			ar.Files[i].Data = data
			return
		}
	}
	ar.Files = append(ar.Files, txtar.File{Name: name, Data: data})
}
