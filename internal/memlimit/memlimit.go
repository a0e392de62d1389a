// Package memlimit sizes the Go garbage collector to the memory the
// process is given.
//
// Go's default collector (GOGC=100) starts a cycle whenever the heap has
// grown by as much as was live after the last one, with a 4 MB floor. A
// lambdagent process holds little between turns, so its collector runs
// after every few MB allocated, however much memory the process has:
// a deep turn (history read from the store and written to the model,
// several hundred KB each way) pays for a collection every few turns,
// and a fleet of small replicas collects more often per turn than one
// large process, because each holds less (see #14 and #17 in the
// README's measurements). A Lambda function or a container has a memory
// size it pays for whether used or not. Where that size is known and the
// operator set neither GOGC nor GOMEMLIMIT, the process sets a memory
// limit of three quarters of it and turns the proportional trigger off:
// the collector then runs when the heap nears the limit, so how often it
// runs depends on the memory given, not on how little the process holds.
// The quarter left covers what the limit does not (memory outside Go's
// runtime, page cache of the binary) and fragmentation.
package memlimit

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
)

// Fraction is the share of the memory size the limit is set to.
const Fraction = 0.75

// A Plan is what Decide found: the memory the process is given, where that
// came from, and the limit to set. A zero Plan changes nothing.
type Plan struct {
	Memory int64  // bytes
	Source string // e.g. "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"
	Limit  int64  // bytes; 0: leave the collector as it is
	// Why says, when Limit is 0, why nothing is set.
	Why string
}

// Env is how Decide reads the environment and files (os.Getenv and
// os.ReadFile; tests give others).
type Env struct {
	Getenv   func(string) string
	ReadFile func(string) ([]byte, error)
}

// Cgroup files giving a container's memory limit, cgroup v2 first.
const (
	cgroupV2 = "/sys/fs/cgroup/memory.max"
	cgroupV1 = "/sys/fs/cgroup/memory/memory.limit_in_bytes"
)

// ErrBadSize is the error of an unreadable LAMBDAGENT_MEMORY.
var ErrBadSize = errors.New("bad memory size")

// Decide finds the process's memory size: LAMBDAGENT_MEMORY ("off" turns
// this off), else a Lambda function's configured memory, else the
// container's cgroup limit. An operator who set GOGC or GOMEMLIMIT has
// decided: nothing is changed then.
func Decide(env Env) (Plan, error) {
	v := strings.TrimSpace(env.Getenv("LAMBDAGENT_MEMORY"))
	switch {
	case strings.EqualFold(v, "off"):
		return Plan{Why: "LAMBDAGENT_MEMORY=off"}, nil
	case env.Getenv("GOGC") != "" || env.Getenv("GOMEMLIMIT") != "":
		return Plan{Why: "GOGC or GOMEMLIMIT is set"}, nil
	case v != "":
		n, err := ParseSize(v)
		if err != nil {
			return Plan{}, fmt.Errorf("LAMBDAGENT_MEMORY: %w", err)
		}
		return For(n, "LAMBDAGENT_MEMORY"), nil
	}
	if mb := strings.TrimSpace(env.Getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")); mb != "" {
		n, err := strconv.ParseInt(mb, 10, 64)
		if err == nil && n > 0 {
			return For(n<<20, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"), nil
		}
	}
	for _, f := range []string{cgroupV2, cgroupV1} {
		b, err := env.ReadFile(f)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		n, err := strconv.ParseInt(s, 10, 64)
		// "max" (v2) or a page-rounded huge number (v1) mean no limit.
		if err != nil || n <= 0 || n >= 1<<50 {
			continue
		}
		return For(n, f), nil
	}
	return Plan{Why: "no memory size known (set LAMBDAGENT_MEMORY)"}, nil
}

// For is the plan for a process given memory bytes, named by source.
func For(memory int64, source string) Plan {
	return Plan{Memory: memory, Source: source, Limit: int64(float64(memory) * Fraction)}
}

// Apply sets p's limit and turns the proportional trigger off; a Plan
// without a limit changes nothing.
func Apply(p Plan) {
	if p.Limit <= 0 {
		return
	}
	debug.SetMemoryLimit(p.Limit)
	debug.SetGCPercent(-1)
}

// String says what p does, for the startup log.
func (p Plan) String() string {
	if p.Limit <= 0 {
		return "garbage collector left as configured: " + p.Why
	}
	return fmt.Sprintf("garbage collector: memory limit %d MiB (%.0f%% of %d MiB from %s), GOGC off",
		p.Limit>>20, Fraction*100, p.Memory>>20, p.Source)
}

// ParseSize reads a size in bytes: a whole number with an optional unit,
// KiB, MiB, GiB (powers of 1024), KB, MB, GB (powers of 1000) or B, e.g.
// "512MiB" or "1GiB". It must be at least 16 MiB: less cannot run a turn.
func ParseSize(s string) (int64, error) {
	num := strings.TrimRightFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	unit := strings.TrimSpace(s[len(num):])
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w %q: want a whole number with an optional unit, e.g. 512MiB", ErrBadSize, s)
	}
	mult := map[string]int64{"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "KB": 1e3, "MB": 1e6, "GB": 1e9}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("%w %q: unknown unit %q (use B, KiB, MiB, GiB, KB, MB or GB)", ErrBadSize, s, unit)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("%w %q: too large", ErrBadSize, s)
	}
	if n*mult < 16<<20 {
		return 0, fmt.Errorf("%w %q: less than 16MiB", ErrBadSize, s)
	}
	return n * mult, nil
}
