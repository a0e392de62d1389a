// Package awssecrets fills configuration variables from an AWS Secrets
// Manager secret at startup, so that ANTHROPIC_API_KEY, REDIS_URL and the
// like need not sit in a Lambda function's environment, where anyone who
// can read the function's configuration sees them (see #13).
//
// The secret named by LAMBDAGENT_SECRETS_ARN holds a JSON object of
// variable names to values:
//
//	{"ANTHROPIC_API_KEY": "sk-ant-…", "REDIS_URL": "rediss://:pw@cache:6380"}
//
// A variable set (non-empty) in the environment wins over the secret: an
// operator can still override one value without editing the secret.
//
// The client is built from the variables Lambda sets (AWS_REGION and the
// execution role's AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_SESSION_TOKEN), without the SDK's config module, for the reason
// lambdafn.NewSQSClient gives: cold starts.
// AWS_ENDPOINT_URL_SECRETS_MANAGER overrides the endpoint, for tests.
package awssecrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// EnvARN names the variable holding the secret's ARN (or name).
const EnvARN = "LAMBDAGENT_SECRETS_ARN"

// Timeout bounds reading the secret at startup, retries included.
const Timeout = 10 * time.Second

// A Client reads a secret; *secretsmanager.Client implements it.
type Client interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

var _ Client = (*secretsmanager.Client)(nil)

// Getenv returns getenv with the values of the secret named by
// LAMBDAGENT_SECRETS_ARN filling the variables getenv leaves empty. With
// LAMBDAGENT_SECRETS_ARN unset it returns getenv unchanged and reaches no
// network. Its errors name the ARN, never a value of the secret.
func Getenv(ctx context.Context, getenv func(string) string) (func(string) string, error) {
	arn := strings.TrimSpace(getenv(EnvARN))
	if arn == "" {
		return getenv, nil
	}
	c, err := NewClient(getenv, arn)
	if err != nil {
		return nil, err
	}
	values, err := Read(ctx, c, arn)
	if err != nil {
		return nil, err
	}
	return Overlay(getenv, values), nil
}

// NewClient builds a Secrets Manager client from the AWS_* variables read
// through getenv. The region is AWS_REGION, else AWS_DEFAULT_REGION, else
// the one in arn.
func NewClient(getenv func(string) string, arn string) (*secretsmanager.Client, error) {
	env := func(name string) string { return strings.TrimSpace(getenv(name)) }
	region := env("AWS_REGION")
	if region == "" {
		region = env("AWS_DEFAULT_REGION")
	}
	if region == "" {
		region = regionOf(arn)
	}
	creds := aws.Credentials{AccessKeyID: env("AWS_ACCESS_KEY_ID"), SecretAccessKey: env("AWS_SECRET_ACCESS_KEY"), SessionToken: env("AWS_SESSION_TOKEN"), Source: "awssecrets"}
	switch {
	case region == "":
		return nil, fmt.Errorf("%w: %s=%s: no region (AWS_REGION)", ErrRead, EnvARN, arn)
	case creds.AccessKeyID == "" || creds.SecretAccessKey == "":
		return nil, fmt.Errorf("%w: %s=%s: no credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)", ErrRead, EnvARN, arn)
	}
	o := secretsmanager.Options{
		Region: region,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return creds, nil
		}),
	}
	if ep := env("AWS_ENDPOINT_URL_SECRETS_MANAGER"); ep != "" {
		o.BaseEndpoint = aws.String(ep)
	}
	return secretsmanager.New(o), nil
}

// regionOf returns the region of an ARN
// (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME), or "".
func regionOf(arn string) string {
	parts := strings.Split(arn, ":")
	if len(parts) < 6 || parts[0] != "arn" {
		return ""
	}
	return parts[3]
}

// Read fetches the secret arn and decodes its SecretString, a JSON object
// of variable names to string values.
func Read(ctx context.Context, c Client, arn string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	out, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrRead, arn, err)
	}
	if out.SecretString == nil {
		return nil, fmt.Errorf("%w %s: no SecretString (a binary secret?); want a JSON object of variable names to values", ErrFormat, arn)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(*out.SecretString), &raw); err != nil || raw == nil {
		// The decoder's message may quote the secret: say only where.
		var se *json.SyntaxError
		where := ""
		if errors.As(err, &se) {
			where = fmt.Sprintf(" (invalid JSON at byte %d)", se.Offset)
		}
		return nil, fmt.Errorf("%w %s: SecretString is not a JSON object%s", ErrFormat, arn, where)
	}
	values := make(map[string]string, len(raw))
	for name, v := range raw {
		if !validName(name) {
			// Not quoted: a value pasted as a key is still a secret.
			return nil, fmt.Errorf("%w %s: a key (%d bytes) is not an environment variable name", ErrFormat, arn, len(name))
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, fmt.Errorf("%w %s: value of %s is not a JSON string", ErrFormat, arn, name)
		}
		values[name] = s
	}
	return values, nil
}

// validName reports whether name is a POSIX-style variable name.
func validName(name string) bool {
	if name == "" {
		return false
	}
	for i, r := range name {
		if !(r == '_' || 'A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || i > 0 && '0' <= r && r <= '9') {
			return false
		}
	}
	return true
}

// Overlay returns a getenv that answers from getenv, and from values for a
// variable getenv leaves empty.
func Overlay(getenv func(string) string, values map[string]string) func(string) string {
	return func(name string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return values[name]
	}
}
