// Package lambdafn runs lambdagent's HTTP API on AWS Lambda: a [Function]
// turns every event source into requests to the one http.Handler the
// container server serves, so a turn has exactly one implementation.
//
// The source is told from the payload's top-level keys:
//
//   - API Gateway REST API (and HTTP API payload 1.0): httpMethod and
//     requestContext. The answer has multiValueHeaders.
//   - API Gateway HTTP API (payload 2.0) and Function URLs: version "2.0"
//     and requestContext.http; a requestContext.domainName containing
//     ".lambda-url." is a Function URL. Cookies become the Cookie header
//     and Set-Cookie comes back in cookies. A named HTTP API stage is cut
//     from the path.
//   - SQS: Records with eventSource "aws:sqs". Each record's body is a
//     POST /agent body; the batch answer lists only the records to
//     redeliver (see SQS batches below).
//   - EventBridge: detail-type, source and detail; detail is a POST /agent
//     body.
//   - Direct Invoke: a POST /agent body, {"session_id","message"}; or a
//     workflow event, {"workflow",…} or {"lambdagent",…} (see Workflow
//     runs).
//
// Bodies travel base64-encoded both ways when they are not UTF-8 text.
//
// A Function URL with InvokeMode RESPONSE_STREAM is served by
// [Function.Streamer] instead: its answers are response streams, the body
// sent as the handler writes it, so server-sent events of a turn reach
// the client while the turn runs. API Gateway buffers whole answers.
//
// # Turns from SQS, EventBridge and direct invocations
//
// Each is a POST /agent request with Content-Type application/json,
// User-Agent lambdafn/<sqs|eventbridge|invoke> and an Idempotency-Key, so
// that a redelivery replays the stored answer instead of running the turn
// again: the body's idempotency_key if it has one, else
// "sqs:<messageId>", "eventbridge:<event id>" or "invoke:<request id>"
// (Lambda retries an asynchronous invocation under the same request id).
// A body may name a queue for the answer in reply_to (an SQS record may
// instead carry it in the String message attribute reply_to, which wins);
// reply_to and idempotency_key are taken out of the body the handler sees.
//
// A reply is the handler's body, with message attributes status,
// idempotency_key and session_id; a redelivered turn replays its stored
// answer and sends it again, so consumers dedupe on idempotency_key. A
// turn naming reply_to when the Function has no SQS client fails without
// running ([ErrNoReplyClient]).
//
// A direct invocation answers the handler's body as is. A non-2xx answer
// fails the invocation (there is no way to return both a payload and an
// error) with errorType "lambdagent.<error type>", e.g.
// lambdagent.session_busy, so that callers and Step Functions can retry
// on it; asynchronous invocations and EventBridge events are then retried
// by Lambda and end in the function's on-failure destination.
//
// # SQS batches
//
// Records that share a session (body session_id) or a FIFO MessageGroupId
// run one after another in batch order; other records run concurrently,
// at most [Config.MaxConcurrency] at once. Once a record fails, the later
// records of its group are failed without running, so that they are
// redelivered behind it and keep their order.
//
// A record is deleted (left out of batchItemFailures) when its turn
// answered 2xx. A record that can never succeed (a body that is not a
// turn, a reply_to or idempotency_key that is not a string, a 400, 413
// or 422 answer) is a poison record (see #17): if it names a reply_to,
// the 4xx answer goes there and the record is deleted; otherwise it is
// sent, with the error in its message attributes, to
// [Config.DeadLetterURL] and deleted, so that it does not hold up its
// FIFO group for maxReceiveCount deliveries. With no dead-letter URL, or
// when that send fails, it is listed, and the queue's own redrive policy
// moves it after maxReceiveCount deliveries: nothing is only logged.
// Every other failure is redelivered: 409 (session busy), 429, 5xx, 401/403/404 (the
// function is misconfigured; the message must survive until that is
// fixed), 504 at the deadline, a reply that could not be sent, or no time
// left to start.
//
// # Workflow runs
//
// With [Config.Runs], a body {"workflow","input","idempotency_key",
// "tenant"} (as an SQS record, an EventBridge detail or a direct payload)
// starts a run, keyed as turns are, and the invocation advances it until
// its deadline. A walk the deadline cuts is handed on to
// [Config.RunQueueURL] as {"lambdagent":"advance","run":ref}, which the
// next invocation continues; a run sleeping less than 15 minutes is
// handed on with the sleep as the message's DelaySeconds. The scheduled
// event {"lambdagent":"timers"} takes the runs whose timers are due (and
// those a dead invocation left) and hands each on. A start with a bad
// input (400) is a poison record like a turn's; an unknown workflow (404)
// is redelivered, as a misconfigured function's turns are.
//
// # Deadlines
//
// The handler's context ends [Config.DeadlineMargin] before the
// invocation's deadline. The handler answers 504 then and commits what is
// complete on a context of its own; the margin leaves time for that
// commit, a reply and the answer to Lambda, so that Lambda never kills the
// process mid-commit. An SQS record whose turn hits the deadline, or that
// had no time to start, is redelivered. A handler that ignores its
// context is killed by Lambda like any other function.
package lambdafn
