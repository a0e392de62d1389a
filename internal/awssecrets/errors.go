package awssecrets

import "errors"

var (
	// ErrRead means the secret could not be read: no region or
	// credentials, or Secrets Manager answered an error.
	ErrRead = errors.New("awssecrets: read secret")
	// ErrFormat means the secret was read but is not a JSON object of
	// variable names to string values.
	ErrFormat = errors.New("awssecrets: secret")
)
