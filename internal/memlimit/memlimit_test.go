package memlimit_test

import (
	"errors"
	"io/fs"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/lambdagent/lambdagent/internal/memlimit"
)

func env(vars map[string]string, files map[string]string) memlimit.Env {
	return memlimit.Env{
		Getenv: func(k string) string { return vars[k] },
		ReadFile: func(name string) ([]byte, error) {
			if s, ok := files[name]; ok {
				return []byte(s), nil
			}
			return nil, fs.ErrNotExist
		},
	}
}

func TestDecide(t *testing.T) {
	const v2, v1 = "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"
	for _, tc := range []struct {
		name   string
		vars   map[string]string
		files  map[string]string
		memory int64
		source string
	}{
		{"lambda", map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512"}, nil, 512 << 20, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"},
		{"cgroup v2", nil, map[string]string{v2: "268435456\n"}, 256 << 20, v2},
		{"cgroup v2 unlimited, v1 set", nil, map[string]string{v2: "max\n", v1: "134217728\n"}, 128 << 20, v1},
		{"cgroup v1 unlimited", nil, map[string]string{v1: "9223372036854771712\n"}, 0, ""},
		{"nothing known", nil, nil, 0, ""},
		{"explicit wins over lambda", map[string]string{"LAMBDAGENT_MEMORY": "1GiB", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512"}, nil, 1 << 30, "LAMBDAGENT_MEMORY"},
		{"off", map[string]string{"LAMBDAGENT_MEMORY": "off", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512"}, nil, 0, ""},
		{"GOGC set", map[string]string{"GOGC": "200", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512"}, nil, 0, ""},
		{"GOMEMLIMIT set", map[string]string{"GOMEMLIMIT": "100MiB", "LAMBDAGENT_MEMORY": "1GiB"}, map[string]string{v2: "268435456"}, 0, ""},
		{"bad lambda value ignored", map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "lots"}, map[string]string{v2: "268435456"}, 256 << 20, v2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := memlimit.Decide(env(tc.vars, tc.files))
			if err != nil {
				t.Fatal(err)
			}
			if p.Memory != tc.memory || p.Source != tc.source {
				t.Fatalf("plan %+v, want memory %d from %q", p, tc.memory, tc.source)
			}
			if want := int64(float64(tc.memory) * memlimit.Fraction); p.Limit != want {
				t.Errorf("limit %d, want %d", p.Limit, want)
			}
			if p.Limit == 0 && p.Why == "" {
				t.Error("a plan that sets nothing must say why")
			}
			if s := p.String(); s == "" || (p.Limit > 0) != strings.Contains(s, "memory limit") {
				t.Errorf("String() = %q", s)
			}
		})
	}
	if _, err := memlimit.Decide(env(map[string]string{"LAMBDAGENT_MEMORY": "a lot"}, nil)); !errors.Is(err, memlimit.ErrBadSize) || !strings.Contains(err.Error(), "LAMBDAGENT_MEMORY") {
		t.Errorf("bad LAMBDAGENT_MEMORY: err = %v, want ErrBadSize naming the variable", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"512MiB": 512 << 20, "512 MiB": 512 << 20, "1GiB": 1 << 30, "100MB": 100e6,
		"20000KiB": 20000 << 10, "16777216": 16 << 20, "16777216B": 16 << 20,
	} {
		if got, err := memlimit.ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "1.5GiB", "-1GiB", "512mib", "512 TB", "1MiB", "99999999999999999999", "9000000000GiB"} {
		if _, err := memlimit.ParseSize(in); !errors.Is(err, memlimit.ErrBadSize) {
			t.Errorf("ParseSize(%q): err = %v, want ErrBadSize", in, err)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"512MiB", "1 GiB", "100MB", "-1", "1e9", "9223372036854775807GiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := memlimit.ParseSize(s)
		if err == nil && n < 16<<20 {
			t.Fatalf("ParseSize(%q) = %d, under the 16 MiB floor", s, n)
		}
		if err != nil && !errors.Is(err, memlimit.ErrBadSize) {
			t.Fatalf("ParseSize(%q): error %v is not ErrBadSize", s, err)
		}
	})
}

// Apply sets the runtime's limit and turns the proportional trigger off;
// a plan without a limit leaves both.
func TestApply(t *testing.T) {
	limit, percent := debug.SetMemoryLimit(-1), debug.SetGCPercent(-1)
	debug.SetGCPercent(percent)
	t.Cleanup(func() { debug.SetMemoryLimit(limit); debug.SetGCPercent(percent) })

	memlimit.Apply(memlimit.Plan{Why: "nothing"})
	if got := debug.SetMemoryLimit(-1); got != limit {
		t.Fatalf("an empty plan changed the limit to %d", got)
	}
	memlimit.Apply(memlimit.Plan{Memory: 512 << 20, Source: "test", Limit: 384 << 20})
	if got := debug.SetMemoryLimit(-1); got != 384<<20 {
		t.Errorf("limit %d, want %d", got, 384<<20)
	}
	if got := debug.SetGCPercent(100); got != -1 {
		t.Errorf("GOGC %d, want off (-1)", got)
	}
}
