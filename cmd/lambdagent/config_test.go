package main

import (
	"strings"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		check   func(t *testing.T, c config)
		wantErr string // substring naming the bad variable
	}{
		{name: "defaults", env: nil, check: func(t *testing.T, c config) {
			if c.Addr != "127.0.0.1:8080" || c.LogFormat != "text" || c.LogLevel != "info" || c.Options.Metrics != "prometheus" {
				t.Errorf("defaults: %+v", c)
			}
		}},
		{name: "PORT alone", env: map[string]string{"PORT": "9000"}, check: func(t *testing.T, c config) {
			if c.Addr != ":9000" {
				t.Errorf("Addr = %q, want :9000", c.Addr)
			}
		}},
		{name: "ADDR beats PORT", env: map[string]string{"PORT": "9000", "LAMBDAGENT_ADDR": "0.0.0.0:1"}, check: func(t *testing.T, c config) {
			if c.Addr != "0.0.0.0:1" {
				t.Errorf("Addr = %q", c.Addr)
			}
		}},
		{name: "on Lambda", env: map[string]string{"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"}, check: func(t *testing.T, c config) {
			if !c.onLambda || c.Options.Metrics != "emf" {
				t.Errorf("onLambda %v, metrics %q; want true, emf", c.onLambda, c.Options.Metrics)
			}
		}},
		{name: "runtime options", env: map[string]string{"LAMBDAGENT_LEASE_TTL": "2s"}, check: func(t *testing.T, c config) {
			if c.Options.LeaseTTL != 2*time.Second {
				t.Errorf("LeaseTTL = %v", c.Options.LeaseTTL)
			}
		}},
		{name: "sim latency", env: map[string]string{"LAMBDAGENT_SIM_LATENCY": "50ms"}, check: func(t *testing.T, c config) {
			if c.SimLatency != 50*time.Millisecond {
				t.Errorf("SimLatency = %v", c.SimLatency)
			}
		}},
		{name: "bad PORT", env: map[string]string{"PORT": "http"}, wantErr: "PORT"},
		{name: "bad log format", env: map[string]string{"LAMBDAGENT_LOG_FORMAT": "xml"}, wantErr: "LAMBDAGENT_LOG_FORMAT"},
		{name: "bad sim latency", env: map[string]string{"LAMBDAGENT_SIM_LATENCY": "-1s"}, wantErr: "LAMBDAGENT_SIM_LATENCY"},
		{name: "bad runtime option", env: map[string]string{"LAMBDAGENT_BUSY_POLICY": "drop"}, wantErr: "LAMBDAGENT_BUSY_POLICY"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

// TestConsoleAddr checks when dev and serve serve the console, and where:
// dev unless LAMBDAGENT_CONSOLE=false, serve only when asked.
func TestConsoleAddr(t *testing.T) {
	for _, tc := range []struct {
		console, addr string
		dev           bool
		want          string // "" means no console
	}{
		{"", "", true, defaultConsoleAddr},
		{"", "", false, ""},
		{"false", "", true, ""},
		{"true", "", false, defaultConsoleAddr},
		{"", "127.0.0.1:9", false, "127.0.0.1:9"},
		{"", "127.0.0.1:9", true, "127.0.0.1:9"},
		{"false", "127.0.0.1:9", false, ""},
	} {
		env := map[string]string{"LAMBDAGENT_CONSOLE": tc.console, "LAMBDAGENT_CONSOLE_ADDR": tc.addr}
		c, err := loadConfig(func(k string) string { return env[k] })
		if err != nil {
			t.Fatal(err)
		}
		addr, on := c.consoleAddr(tc.dev)
		if addr != tc.want || on != (tc.want != "") {
			t.Errorf("CONSOLE=%q CONSOLE_ADDR=%q dev=%v: consoleAddr = %q, %v; want %q", tc.console, tc.addr, tc.dev, addr, on, tc.want)
		}
	}
	if _, err := loadConfig(func(k string) string { return map[string]string{"LAMBDAGENT_CONSOLE": "yes"}[k] }); err == nil || !strings.Contains(err.Error(), "LAMBDAGENT_CONSOLE") {
		t.Errorf("LAMBDAGENT_CONSOLE=yes: %v; want an error naming it", err)
	}
}
