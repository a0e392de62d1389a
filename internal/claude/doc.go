// Package claude calls the Anthropic Messages API through the official
// anthropic-sdk-go client.
//
// Requests and replies stay raw JSON: the caller builds the request body
// from the stored history by concatenation and the SDK sends it as is
// (option.WithRequestBody), so nothing is decoded into SDK param types and
// re-encoded. Only the reply, which is small, is decoded, and its content
// array is kept as the raw bytes Claude sent (thinking blocks and their
// signatures must go back verbatim).
//
// The SDK's own retries are off; [Client] retries 429, 529, 5xx and
// connection errors with one [retry.Policy], so attempts never stack. It
// reads the server's signals as the SDK's retry does (see #14):
// x-should-retry overrides the status, retry-after-ms then retry-after is
// the wait, and a 429 without them waits for its exhausted limit's reset.
//
// A body that asks to stream gets its events read back into the same
// [Reply]; an error event after the 200 (an overloaded_error mid-answer)
// is the [StatusError] of the status its type goes with, and retried so.
package claude
