// Command floorserver is the least a stateful Claude turn can be in Go,
// for scripts/scale to run beside lambdagent serve (#17): POST /agent
// reads the session's history from Redis (one GET), sends it with the new
// message to the Messages API with a plain net/http client, appends both
// messages to Redis (one APPEND) and answers. No lease, no idempotency, no
// limits, no telemetry: what is left is the network waits every turn has
// (two Redis round trips and one model call) and Go's runtime around
// them. If its CPU per turn grows with the number of processes the same
// way lambdagent's does, the growth is the runtime's, not lambdagent's.
//
//	REDIS_URL=redis://127.0.0.1:6379 ANTHROPIC_BASE_URL=http://127.0.0.1:9000 \
//	  FLOOR_ADDR=127.0.0.1:8080 go run ./scripts/floorserver
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"

	"github.com/redis/go-redis/v9"
)

func main() {
	opt, err := redis.ParseURL(os.Getenv("REDIS_URL"))
	if err != nil {
		log.Fatalf("floorserver: REDIS_URL: %v", err)
	}
	rdb := redis.NewClient(opt)
	model := os.Getenv("ANTHROPIC_BASE_URL") + "/v1/messages"
	prefix := os.Getenv("FLOOR_PREFIX")
	// As many idle connections to the model as lambdagent's client keeps.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	client := &http.Client{Transport: tr}
	http.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	http.HandleFunc("POST /agent", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			SessionID string `json:"session_id"`
			Message   string `json:"message"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.SessionID == "" {
			http.Error(w, `{"error":{"type":"invalid_request_error","message":"want session_id and message"}}`, http.StatusBadRequest)
			return
		}
		key := prefix + "{" + in.SessionID + "}:hist"
		hist, err := rdb.Get(r.Context(), key).Bytes()
		if err != nil && err != redis.Nil {
			http.Error(w, `{"error":{"type":"store_unavailable"}}`, http.StatusServiceUnavailable)
			return
		}
		msg, _ := json.Marshal(in.Message)
		user := append(append([]byte(`{"role":"user","content":`), msg...), '}')
		body := []byte(`{"model":"claude-sonnet-5-5","max_tokens":1024,"messages":[`)
		if len(hist) > 0 {
			body = append(append(body, hist...), ',')
		}
		body = append(append(body, user...), "]}"...)
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, model, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Api-Key", os.Getenv("ANTHROPIC_API_KEY"))
		req.Header.Set("Anthropic-Version", "2023-06-01")
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, `{"error":{"type":"upstream_error"}}`, http.StatusBadGateway)
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var out struct {
			Content []json.RawMessage `json:"content"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &out) != nil {
			http.Error(w, `{"error":{"type":"upstream_error"}}`, http.StatusBadGateway)
			return
		}
		content, _ := json.Marshal(out.Content)
		add := append(append(append([]byte{}, user...), `,{"role":"assistant","content":`...), content...)
		add = append(add, '}')
		if len(hist) > 0 {
			add = append([]byte{','}, add...)
		}
		if err := rdb.Append(r.Context(), key, string(add)).Err(); err != nil {
			http.Error(w, `{"error":{"type":"store_unavailable"}}`, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"session_id":%q,"response":"ok"}`, in.SessionID)
	})
	addr := os.Getenv("FLOOR_ADDR")
	log.Fatal(http.ListenAndServe(addr, nil))
}
