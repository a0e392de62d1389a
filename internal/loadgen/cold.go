package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ColdConfig describes a cold-start measurement. A zero field means its
// documented default.
type ColdConfig struct {
	// URL is the turn endpoint the started server answers on (as in
	// Config.URL).
	URL string
	// Command starts the server: its path, then its arguments.
	Command []string
	// Env is the server's environment. Nil means this process's.
	Env []string
	// Runs is how many times the server is started. Zero means 10.
	Runs int
	// Timeout bounds one start → first answered turn. Zero means 30s.
	Timeout time.Duration
	// APIKey, if set, is sent as "Authorization: Bearer APIKey".
	APIKey string
	// Poll is the pause between attempts while the server is not
	// answering yet. Zero means 2ms.
	Poll time.Duration
}

// A ColdReport is a cold-start measurement's outcome.
type ColdReport struct {
	Command []string `json:"command"`
	// StartToTurn is spawn → first answered turn, per run.
	StartToTurn Summary   `json:"start_to_first_turn"`
	SamplesMS   []float64 `json:"samples_ms"`
	// PeakRSSKiB is the largest peak resident set (VmHWM) a server
	// reached by its first answer; zero where /proc is missing.
	PeakRSSKiB int64 `json:"peak_rss_kib"`
}

// Cold starts cfg.Command cfg.Runs times; each time it sends one turn
// (as soon as the server accepts connections, and again every Poll until
// an answer is 200), then kills the server's process group. It fails on
// the first start that does not answer within Timeout, with the server's
// last output.
func Cold(ctx context.Context, cfg ColdConfig) (*ColdReport, error) {
	ep, err := parseEndpoint(cfg.URL)
	if err != nil {
		return nil, err
	}
	if len(cfg.Command) == 0 {
		return nil, fmt.Errorf("%w: no server command", ErrBadConfig)
	}
	if cfg.Runs <= 0 {
		cfg.Runs = 10
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 2 * time.Millisecond
	}
	// A fresh client per start: no connection survives its server.
	rep := &ColdReport{Command: cfg.Command}
	var samples []time.Duration
	run := newRunID()
	for i := range cfg.Runs {
		d, rss, err := coldOnce(ctx, cfg, ep, fmt.Sprintf("cold-%s-%d", run, i))
		if err != nil {
			return nil, fmt.Errorf("cold start %d of %d: %w", i+1, cfg.Runs, err)
		}
		samples = append(samples, d)
		rep.SamplesMS = append(rep.SamplesMS, ms(d))
		rep.PeakRSSKiB = max(rep.PeakRSSKiB, rss)
	}
	rep.StartToTurn = summarize(samples)
	return rep, nil
}

func coldOnce(ctx context.Context, cfg ColdConfig, ep endpoints, session string) (time.Duration, int64, error) {
	body, _ := json.Marshal(map[string]string{"session_id": session, "message": "cold start"})
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	cmd := exec.Command(cfg.Command[0], cfg.Command[1:]...)
	cmd.Env = cfg.Env
	out := &tailBuffer{max: 4096}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = newGroup()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, fmt.Errorf("start %s: %w", cfg.Command[0], err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() {
		killGroup(cmd.Process)
		<-exited
	}()
	deadline := start.Add(cfg.Timeout)
	last := "no answer"
	for {
		rep := post(ctx, client, ep.turn, body, "", cfg.APIKey, time.Until(deadline))
		if rep.err == nil && rep.status == http.StatusOK {
			return time.Since(start), peakRSS(cmd.Process.Pid), nil
		}
		if err := rep.authErr(cfg.APIKey != ""); err != nil {
			return 0, 0, err
		}
		if rep.err != nil {
			last = rep.err.Error()
		} else {
			last = rep.kind()
		}
		select {
		case <-exited:
			return 0, 0, fmt.Errorf("server exited before answering (%v); its output:\n%s", cmd.ProcessState, out)
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(cfg.Poll):
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("no answered turn within %v (last: %s); server output:\n%s", cfg.Timeout, last, out)
		}
	}
}

// peakRSS reads VmHWM, in KiB, from /proc; 0 where it cannot.
func peakRSS(pid int) int64 {
	v, _ := procStatus(pid, "VmHWM")
	return v
}

// procStatus reads one "Name: N kB" field of /proc/PID/status.
func procStatus(pid int, field string) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		return n, err
	}
	return 0, errors.New("no " + field + " in /proc/" + strconv.Itoa(pid) + "/status")
}

// WriteText writes the cold-start report for a person.
func (r *ColdReport) WriteText(w io.Writer) error {
	s := r.StartToTurn
	_, err := fmt.Fprintf(w, "cold start: %s\n  spawn → first answered turn, %d starts: min %s  p50 %s  max %s\n",
		strings.Join(r.Command, " "), s.Count, msText(s.Min), msText(s.P50), msText(s.Max))
	if err == nil && r.PeakRSSKiB > 0 {
		_, err = fmt.Fprintf(w, "  peak RSS by the first answer: %.1f MiB\n", float64(r.PeakRSSKiB)/1024)
	}
	return err
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	mu  sync.Mutex
	b   []byte // guarded by mu
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = bytes.Clone(t.b[len(t.b)-t.max:])
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
