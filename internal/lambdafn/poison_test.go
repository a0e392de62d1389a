package lambdafn

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/lambdafn/internal/apistub"
)

// TestSQSPoison delivers a FIFO batch with two poison records (a body
// that is not JSON, and a turn the handler answers 400) ahead of a good
// record of the same group (see #17). With a dead-letter queue that
// accepts them, both go there with their error and nothing is listed, so
// the good record runs; when the dead-letter send fails, or there is no
// dead-letter URL, the poison records are listed, and so is the good one
// behind the first (FIFO order), which does not run.
func TestSQSPoison(t *testing.T) {
	batch := []byte(`{"Records":[
		{"messageId":"m1","eventSource":"aws:sqs","body":"not json","attributes":{"MessageGroupId":"g1","SourceQueueArn":"arn:aws:sqs:us-east-1:123456789012:turns.fifo"}},
		{"messageId":"m2","eventSource":"aws:sqs","body":"{\"session_id\":\"s1\",\"message\":\"after the poison\"}","attributes":{"MessageGroupId":"g1"}},
		{"messageId":"m3","eventSource":"aws:sqs","body":"{\"session_id\":\"s2\",\"message\":\"\"}","attributes":{"MessageGroupId":"g2"}}]}`)
	for _, tc := range []struct {
		name     string
		dlq      string // "" for none
		failures []string
		dead     int // messages the dead-letter queue got
		m2Runs   int
	}{
		{"dead-letter send ok", "https://sqs.us-east-1.amazonaws.com/123456789012/turns-dlq.fifo", []string{}, 2, 1},
		{"dead-letter send fails", "https://sqs.us-east-1.amazonaws.com/123456789012/missing-dlq.fifo", []string{"m1", "m2", "m3"}, 0, 0},
		{"no dead-letter queue", "", []string{"m1", "m2", "m3"}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peer := startSQSPeer(t)
			api := apistub.New()
			f := newFunction(t, api, Config{SQS: peer.client(t), DeadLetterURL: tc.dlq})
			if diff := cmp.Diff(tc.failures, sqsFailures(t, t.Context(), f, batch)); diff != "" {
				t.Errorf("batchItemFailures (-want +got):\n%s", diff)
			}
			if n := api.Runs("sqs:m2"); n != tc.m2Runs {
				t.Errorf("the good record behind the poison one ran %d times; want %d", n, tc.m2Runs)
			}
			sent := peer.Sent()
			if len(sent) != tc.dead {
				t.Fatalf("dead-letter queue got %d messages; want %d: %+v", len(sent), tc.dead, sent)
			}
			if tc.dead == 0 {
				return
			}
			bySource := map[string]sentMessage{}
			for _, m := range sent {
				bySource[m.Attributes["source_message_id"]] = m
			}
			m1, m3 := bySource["String=m1"], bySource["String=m3"]
			if m1.QueueURL != tc.dlq || m1.Body != "not json" || m1.GroupID != "g1" || m1.DedupID != "m1" ||
				!strings.HasPrefix(m1.Attributes["error"], "String=") || m1.Attributes["source_queue_arn"] != "String=arn:aws:sqs:us-east-1:123456789012:turns.fifo" {
				t.Errorf("dead letter of m1 = %+v; want its body, group, an error and its source queue", m1)
			}
			if m3.Attributes["status"] != "Number=400" || !strings.Contains(m3.Attributes["error"], "required") || m3.GroupID != "g2" {
				t.Errorf("dead letter of m3 = %+v; want status 400 and the handler's error", m3)
			}
			t.Logf("m1 error attribute: %s", m1.Attributes["error"])
		})
	}
}
