package lambdafn

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"golang.org/x/sync/errgroup"
)

// An SQSClient sends messages; *sqs.Client implements it. It is used to
// send answers to reply_to queues, and must be safe for concurrent use.
type SQSClient interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

var _ SQSClient = (*sqs.Client)(nil)

// SQSClientConfig says how [NewSQSClient] reaches SQS. In Lambda every
// field comes from the environment the runtime sets: AWS_REGION,
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN (the
// execution role's credentials, valid for the life of the execution
// environment); Endpoint from AWS_ENDPOINT_URL_SQS, for tests.
type SQSClientConfig struct {
	Region          string
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	// Endpoint overrides the regional endpoint. Empty means the default.
	Endpoint string
}

// NewSQSClient builds an SQS client from c without the SDK's config
// module: that module (shared config files, SSO, STS, IMDS) adds about
// 2 MB to the binary for credentials Lambda already hands over in the
// environment. Build it once at init.
func NewSQSClient(c SQSClientConfig) (*sqs.Client, error) {
	switch {
	case c.Region == "":
		return nil, errors.New("lambdafn: SQS client: no region (AWS_REGION)")
	case c.AccessKeyID == "" || c.SecretAccessKey == "":
		return nil, errors.New("lambdafn: SQS client: no credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)")
	}
	creds := aws.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken, Source: "lambdafn"}
	o := sqs.Options{
		Region: c.Region,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return creds, nil
		}),
	}
	if c.Endpoint != "" {
		o.BaseEndpoint = aws.String(c.Endpoint)
	}
	return sqs.New(o), nil
}

// sqsRecord is the part of an SQS record we use.
type sqsRecord struct {
	MessageID         string            `json:"messageId"`
	Body              string            `json:"body"`
	EventSource       string            `json:"eventSource"`
	Attributes        map[string]string `json:"attributes"`
	MessageAttributes map[string]struct {
		StringValue *string `json:"stringValue"`
	} `json:"messageAttributes"`
}

func decodeSQS(payload []byte) ([]sqsRecord, error) {
	var e struct {
		Records []sqsRecord `json:"Records"`
	}
	if err := json.Unmarshal(payload, &e); err != nil {
		return nil, fmt.Errorf("%w: Records: %v", ErrInvalidEvent, err)
	}
	if len(e.Records) == 0 {
		return nil, fmt.Errorf("%w: no Records", ErrInvalidEvent)
	}
	for i, r := range e.Records {
		if r.EventSource != "aws:sqs" {
			return nil, fmt.Errorf("%w: records from %q (want aws:sqs)", ErrUnsupportedEvent, r.EventSource)
		}
		if r.MessageID == "" {
			return nil, fmt.Errorf("%w: SQS record %d without messageId", ErrInvalidEvent, i)
		}
	}
	return e.Records, nil
}

// sqsResponse is the partial batch answer (SQSEventResponse): the records
// listed are redelivered, all others are deleted from the queue.
type sqsResponse struct {
	BatchItemFailures []sqsItemFailure `json:"batchItemFailures"`
}

type sqsItemFailure struct {
	ItemIdentifier string `json:"itemIdentifier"`
}

// sqsJob is one record made ready to run.
type sqsJob struct {
	rec sqsRecord
	t   turn
	run *runJob // a workflow event instead of a turn
	err error   // the record is malformed; it is dropped
}

// serveSQS runs a batch: each record is one POST /agent turn keyed
// "sqs:<messageId>", so a redelivered record replays its stored answer
// instead of running twice. The package comment says which records are
// redelivered and why.
func (f *Function) serveSQS(ctx context.Context, records []sqsRecord) ([]byte, error) {
	tctx, cancel := f.turnContext(ctx)
	defer cancel()
	jobs := make([]sqsJob, len(records))
	for i, rec := range records {
		if job, ok, err := parseRunJob([]byte(rec.Body)); ok {
			if job.workflow != "" && job.key == "" {
				job.key = "sqs:" + rec.MessageID
			}
			jobs[i] = sqsJob{rec: rec, run: &job, err: err}
			continue
		}
		t, err := parseTurn([]byte(rec.Body), "sqs")
		if a, ok := rec.MessageAttributes["reply_to"]; ok && a.StringValue != nil && *a.StringValue != "" {
			t.replyTo = *a.StringValue
		}
		if t.key == "" {
			t.key = "sqs:" + rec.MessageID
		}
		jobs[i] = sqsJob{rec: rec, t: t, err: err}
	}
	failed := make([]bool, len(jobs)) // each element written by its group's goroutine only
	var g errgroup.Group
	g.SetLimit(f.maxConc)
	for _, group := range sqsGroups(jobs) {
		g.Go(func() error {
			for n, i := range group {
				if f.runRecord(ctx, tctx, jobs[i]) {
					continue
				}
				for _, j := range group[n:] {
					failed[j] = true
				}
				if rest := len(group) - n - 1; rest > 0 {
					f.log.WarnContext(ctx, "lambdafn: SQS records left for redelivery behind a failed one of the same group",
						slog.String("message_id", jobs[i].rec.MessageID), slog.Int("records", rest))
				}
				return nil
			}
			return nil
		})
	}
	_ = g.Wait() // the goroutines return no errors
	resp := sqsResponse{BatchItemFailures: []sqsItemFailure{}}
	for i, bad := range failed {
		if bad {
			resp.BatchItemFailures = append(resp.BatchItemFailures, sqsItemFailure{ItemIdentifier: jobs[i].rec.MessageID})
		}
	}
	return json.Marshal(resp)
}

// runRecord runs one record and reports whether it is done with (deleted
// from the queue); false means redeliver it.
func (f *Function) runRecord(ctx, tctx context.Context, job sqsJob) bool {
	log := f.log.With(slog.String("message_id", job.rec.MessageID))
	if job.err != nil {
		return f.deadLetter(ctx, log, job, 0, job.err.Error())
	}
	if job.run != nil {
		return f.runRunRecord(ctx, tctx, log, job)
	}
	t := job.t
	if t.replyTo != "" && f.sqs == nil {
		log.ErrorContext(ctx, "lambdafn: SQS record left for redelivery", slog.Any("err", ErrNoReplyClient), slog.String("reply_to", t.replyTo))
		return false
	}
	if err := tctx.Err(); err != nil {
		log.WarnContext(ctx, "lambdafn: no time left to run SQS record; left for redelivery", slog.Any("err", err))
		return false
	}
	res := f.serve(t.request(tctx, f.tenant))
	switch {
	case res.ok():
	case permanent(res.code) && t.replyTo == "":
		return f.deadLetter(ctx, log, job, res.code, strings.TrimSpace(string(res.body)))
	case permanent(res.code):
		log.ErrorContext(ctx, "lambdafn: SQS record the handler rejected; the answer goes to its reply_to", slog.Int("status", res.code),
			slog.String("body", strings.TrimSpace(string(res.body))))
	default:
		se := res.statusError()
		log.WarnContext(ctx, "lambdafn: SQS record failed; left for redelivery", slog.Int("status", se.Code),
			slog.String("type", se.Type), slog.String("message", se.Message))
		return false
	}
	if t.replyTo != "" {
		if err := f.reply(ctx, t, res); err != nil {
			log.ErrorContext(ctx, "lambdafn: SQS record left for redelivery", slog.Any("err", err))
			return false
		}
	}
	return true
}

// runRunRecord runs a workflow record: a start or a hand-off. A start
// the engine refuses for good (bad input) goes to the dead-letter queue;
// other failures are redelivered (a start again finds its run by key).
func (f *Function) runRunRecord(ctx, tctx context.Context, log *slog.Logger, job sqsJob) bool {
	if err := tctx.Err(); err != nil {
		log.WarnContext(ctx, "lambdafn: no time left to run SQS record; left for redelivery", slog.Any("err", err))
		return false
	}
	_, err := f.serveRun(ctx, tctx, *job.run)
	if err == nil {
		return true
	}
	if code := runStatus(err); permanent(code) {
		return f.deadLetter(ctx, log, job, code, err.Error())
	}
	log.WarnContext(ctx, "lambdafn: SQS workflow record failed; left for redelivery", slog.Any("err", err))
	return false
}

// deadLetter sends a poison record to the dead-letter queue, with why in
// its attributes, and reports whether that worked: true deletes the
// record from its queue, false lists it for redelivery (and the queue's
// redrive policy), with or without a dead-letter queue of ours.
func (f *Function) deadLetter(ctx context.Context, log *slog.Logger, job sqsJob, status int, why string) bool {
	if f.dlq == "" || f.sqs == nil {
		log.ErrorContext(ctx, "lambdafn: SQS record can never succeed; listed for redelivery, which the queue's redrive policy ends (set LAMBDAGENT_DLQ_URL to move it at once)",
			slog.Int("status", status), slog.String("error", why))
		return false
	}
	body := job.rec.Body
	if body == "" {
		body = "{}" // SQS refuses an empty message (and never delivers one)
	}
	if len(why) > 1024 {
		why = why[:1024]
	}
	attrs := map[string]types.MessageAttributeValue{
		"source_message_id": {DataType: aws.String("String"), StringValue: aws.String(job.rec.MessageID)},
	}
	if sqsText(why) {
		attrs["error"] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(why)}
	}
	if status > 0 {
		attrs["status"] = types.MessageAttributeValue{DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(status))}
	}
	if src := job.rec.Attributes["SourceQueueArn"]; sqsText(src) {
		attrs["source_queue_arn"] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(src)}
	}
	in := &sqs.SendMessageInput{QueueUrl: aws.String(f.dlq), MessageBody: aws.String(body), MessageAttributes: attrs}
	if strings.HasSuffix(f.dlq, ".fifo") {
		group := job.rec.Attributes["MessageGroupId"]
		if !sqsID(group) {
			group = job.rec.MessageID
		}
		in.MessageGroupId, in.MessageDeduplicationId = aws.String(group), aws.String(job.rec.MessageID)
	}
	if _, err := f.sqs.SendMessage(ctx, in); err != nil {
		log.ErrorContext(ctx, "lambdafn: SQS record can never succeed, and sending it to the dead-letter queue failed; listed for redelivery",
			slog.Int("status", status), slog.String("error", why), slog.Any("err", err))
		return false
	}
	log.WarnContext(ctx, "lambdafn: SQS record can never succeed; sent to the dead-letter queue", slog.Int("status", status),
		slog.String("error", why), slog.String("dlq", f.dlq))
	return true
}

// sqsGroups splits the jobs into groups that must run in order: records
// sharing a session or a FIFO MessageGroupId (transitively) are one group.
// Groups and the records in them keep batch order.
func sqsGroups(jobs []sqsJob) [][]int {
	parent := make([]int, len(jobs))
	find := func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	first := map[string]int{}
	for i, job := range jobs {
		parent[i] = i
		keys := [2]string{}
		if job.t.sessionID != "" {
			keys[0] = "session\x00" + job.t.sessionID
		}
		if gid := job.rec.Attributes["MessageGroupId"]; gid != "" {
			keys[1] = "group\x00" + gid
		}
		for _, k := range keys {
			if k == "" {
				continue
			}
			if j, ok := first[k]; ok {
				parent[find(i)] = find(j)
			} else {
				first[k] = i
			}
		}
	}
	var groups [][]int
	index := map[int]int{} // root → position in groups
	for i := range jobs {
		root := find(i)
		n, ok := index[root]
		if !ok {
			n = len(groups)
			index[root] = n
			groups = append(groups, nil)
		}
		groups[n] = append(groups[n], i)
	}
	return groups
}

// reply sends a turn's answer to its reply_to queue: the handler's body as
// the message, with attributes status (Number), idempotency_key and
// session_id (String; each left out when SQS would refuse its text). The
// same turn may be answered more than once (a redelivered record replays
// its answer and sends it again), so consumers dedupe on idempotency_key.
// A FIFO queue (URL ending in .fifo) gets the session as MessageGroupId
// and a deduplication id derived from the key.
func (f *Function) reply(ctx context.Context, t turn, res result) error {
	body := string(res.body)
	if strings.TrimSpace(body) == "" {
		body = "{}" // SQS refuses an empty message
	}
	attrs := map[string]types.MessageAttributeValue{
		"status": {DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(res.code))},
	}
	for name, v := range map[string]string{"idempotency_key": t.key, "session_id": t.sessionID} {
		if sqsText(v) {
			attrs[name] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
		}
	}
	in := &sqs.SendMessageInput{QueueUrl: aws.String(t.replyTo), MessageBody: aws.String(body), MessageAttributes: attrs}
	if strings.HasSuffix(t.replyTo, ".fifo") {
		sum := sha256.Sum256([]byte(t.key))
		dedup := hex.EncodeToString(sum[:])
		group := t.sessionID
		if !sqsID(group) {
			group = dedup
		}
		in.MessageGroupId, in.MessageDeduplicationId = aws.String(group), aws.String(dedup)
	}
	if _, err := f.sqs.SendMessage(ctx, in); err != nil {
		return fmt.Errorf("send reply to %s: %w", t.replyTo, err)
	}
	return nil
}

// sqsText reports whether SQS accepts s as a non-empty attribute value:
// the characters XML allows.
func sqsText(s string) bool {
	if s == "" || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r >= 0xD800 && r < 0xE000 || r == 0xFFFE || r == 0xFFFF {
			return false
		}
	}
	return true
}

// sqsID reports whether s can be a MessageGroupId: 1 to 128 printable
// ASCII characters other than space. (A valid session id always is.)
func sqsID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
