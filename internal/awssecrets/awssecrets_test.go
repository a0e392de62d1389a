package awssecrets_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/awssecrets"
)

const arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:lambdagent-AbCdEf"

// fakeSM speaks the Secrets Manager JSON protocol for GetSecretValue: it
// answers with the SecretString of the secret it holds, or with an error.
type fakeSM struct {
	secret string // SecretString; "" means none (a binary secret)
	status int    // non-zero: answer this error status

	mu   sync.Mutex
	seen []string // "target secretId" of each request
}

func (f *fakeSM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var in struct{ SecretId string }
	_ = json.Unmarshal(body, &in)
	f.mu.Lock()
	f.seen = append(f.seen, r.Method+" "+r.Header.Get("X-Amz-Target")+" "+in.SecretId)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if r.Header.Get("X-Amz-Target") != "secretsmanager.GetSecretValue" || in.SecretId != arn {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"__type":"ResourceNotFoundException","message":"Secrets Manager can't find the specified secret."}`)
		return
	}
	if f.status != 0 {
		w.WriteHeader(f.status)
		io.WriteString(w, `{"__type":"AccessDeniedException","message":"not allowed"}`)
		return
	}
	out := map[string]any{"ARN": arn, "Name": "lambdagent", "VersionId": "v1", "VersionStages": []string{"AWSCURRENT"}, "CreatedDate": 1.7e9}
	if f.secret != "" {
		out["SecretString"] = f.secret
	}
	json.NewEncoder(w).Encode(out)
}

func (f *fakeSM) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.seen...)
}

func TestGetenv(t *testing.T) {
	const content = `{"ANTHROPIC_API_KEY": "sk-from-secret-1", "REDIS_URL": "redis://:pw-from-secret@h:1", "LAMBDAGENT_MODEL": "from-secret"}`
	tests := []struct {
		name    string
		secret  string
		status  int
		env     map[string]string // beyond the AWS ones
		want    map[string]string // variables read through the result
		wantErr error
		wantReq int
	}{
		{
			name: "fills unset variables; set ones win", secret: content,
			env:     map[string]string{"LAMBDAGENT_MODEL": "from-env"},
			want:    map[string]string{"ANTHROPIC_API_KEY": "sk-from-secret-1", "REDIS_URL": "redis://:pw-from-secret@h:1", "LAMBDAGENT_MODEL": "from-env", "OTHER": ""},
			wantReq: 1,
		},
		{name: "not JSON", secret: "sk-not-json-secret", wantErr: awssecrets.ErrFormat, wantReq: 1},
		{name: "array", secret: `["sk-array-secret"]`, wantErr: awssecrets.ErrFormat, wantReq: 1},
		{name: "non-string value", secret: `{"ANTHROPIC_API_KEY": {"k": "sk-nested-secret"}}`, wantErr: awssecrets.ErrFormat, wantReq: 1},
		{name: "bad name", secret: `{"A=B": "sk-bad-name-secret"}`, wantErr: awssecrets.ErrFormat, wantReq: 1},
		{name: "binary secret", secret: "", wantErr: awssecrets.ErrFormat, wantReq: 1},
		// The SDK retries a 5xx: count only that it tried.
		{name: "access denied", secret: content, status: http.StatusBadRequest, wantErr: awssecrets.ErrRead, wantReq: 1},
		{name: "unknown secret", secret: content, env: map[string]string{awssecrets.EnvARN: arn + "-other"}, wantErr: awssecrets.ErrRead, wantReq: 1},
		{name: "no credentials", secret: content, env: map[string]string{"AWS_ACCESS_KEY_ID": "-"}, wantErr: awssecrets.ErrRead},
		{name: "no ARN: no request", secret: content, env: map[string]string{awssecrets.EnvARN: "-"},
			want: map[string]string{"ANTHROPIC_API_KEY": ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeSM{secret: tc.secret, status: tc.status}
			srv := httptest.NewServer(f)
			defer srv.Close()
			env := map[string]string{
				awssecrets.EnvARN:                  arn,
				"AWS_ACCESS_KEY_ID":                "AKIDEXAMPLE",
				"AWS_SECRET_ACCESS_KEY":            "aws-secret-key",
				"AWS_ENDPOINT_URL_SECRETS_MANAGER": srv.URL,
			}
			for k, v := range tc.env {
				env[k] = v
				if v == "-" {
					delete(env, k)
				}
			}
			getenv, err := awssecrets.Getenv(context.Background(), func(k string) string { return env[k] })
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if n := len(f.requests()); (tc.wantReq == 0) != (n == 0) {
				t.Errorf("made %d requests, want %d", n, tc.wantReq)
			}
			if err != nil {
				t.Logf("error: %v", err)
				if env[awssecrets.EnvARN] != "" && !strings.Contains(err.Error(), env[awssecrets.EnvARN]) {
					t.Errorf("error does not name the ARN: %v", err)
				}
				for _, secret := range []string{"sk-", "pw-from-secret", "aws-secret-key"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error shows the secret's content (%q): %v", secret, err)
					}
				}
				return
			}
			got := map[string]string{}
			for k := range tc.want {
				got[k] = getenv(k)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("variables (-want +got):\n%s", diff)
			}
			if tc.wantReq > 0 {
				if diff := cmp.Diff([]string{"POST secretsmanager.GetSecretValue " + arn}, f.requests()); diff != "" {
					t.Errorf("requests (-want +got):\n%s", diff)
				}
			}
		})
	}
}
