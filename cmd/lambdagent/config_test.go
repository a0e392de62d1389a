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
			if c.Addr != "127.0.0.1:8080" || c.Agent.Model != "claude-sonnet-5-5" || c.Agent.Busy != "queue" || c.DBPath != "lambdagent.db" {
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
		{name: "durations", env: map[string]string{"LAMBDAGENT_LEASE_TTL": "2s", "LAMBDAGENT_SESSION_TTL": "1h"}, check: func(t *testing.T, c config) {
			if c.Agent.LeaseTTL != 2*time.Second || c.SessionTTL != time.Hour {
				t.Errorf("got %v %v", c.Agent.LeaseTTL, c.SessionTTL)
			}
		}},
		{name: "bad PORT", env: map[string]string{"PORT": "http"}, wantErr: "PORT"},
		{name: "bad duration", env: map[string]string{"LAMBDAGENT_QUEUE_WAIT": "soon"}, wantErr: "LAMBDAGENT_QUEUE_WAIT"},
		{name: "negative duration", env: map[string]string{"LAMBDAGENT_LEASE_TTL": "-1s"}, wantErr: "LAMBDAGENT_LEASE_TTL"},
		{name: "tiny lease", env: map[string]string{"LAMBDAGENT_LEASE_TTL": "1ms"}, wantErr: "LAMBDAGENT_LEASE_TTL"},
		{name: "bad policy", env: map[string]string{"LAMBDAGENT_BUSY_POLICY": "drop"}, wantErr: "LAMBDAGENT_BUSY_POLICY"},
		{name: "bad int", env: map[string]string{"LAMBDAGENT_MAX_TOKENS": "lots"}, wantErr: "LAMBDAGENT_MAX_TOKENS"},
		{name: "bad redis url hides password", env: map[string]string{"REDIS_URL": "http://user:secret@host:6379"}, wantErr: "REDIS_URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error leaks a password: %v", err)
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
