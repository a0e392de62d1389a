package auth

import (
	"fmt"
	"strings"
)

// MaxTokenBytes bounds a bearer token, an API key or a JWT. API keys are
// exactly [KeyLen] bytes; the bound is set by JWTs, whose size grows with
// their claims (a Cognito ID token is 1–2 KB). Anything longer is refused
// before it is decoded, hashed or logged.
const MaxTokenBytes = 8 << 10

// ParseBearer returns the token of an Authorization header value of the
// form "Bearer <token>". The scheme is matched without regard to case
// (RFC 9110 §11.1); exactly one space separates it from the token; the
// token is 1 to [MaxTokenBytes] bytes of RFC 6750's b64token alphabet
// (letters, digits, "-._~+/", then any '='), which both API keys and JWTs
// use. An empty header gives [ErrMissingCredentials]; anything else that
// does not fit gives [ErrMalformed]. Errors never quote the header.
func ParseBearer(header string) (string, error) {
	if header == "" {
		return "", ErrMissingCredentials
	}
	scheme, tok, _ := strings.Cut(header, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", fmt.Errorf("%w: Authorization scheme is not Bearer", ErrMalformed)
	}
	if tok == "" {
		return "", fmt.Errorf("%w: empty bearer token", ErrMalformed)
	}
	if len(tok) > MaxTokenBytes {
		return "", fmt.Errorf("%w: bearer token longer than %d bytes", ErrMalformed, MaxTokenBytes)
	}
	if err := checkB64Token(tok); err != nil {
		return "", err
	}
	return tok, nil
}

// checkB64Token checks tok against RFC 6750 §2.1's b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func checkB64Token(tok string) error {
	i := 0
	for ; i < len(tok); i++ {
		c := tok[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' {
			continue
		}
		break
	}
	if i == 0 {
		return fmt.Errorf("%w: bearer token starts with a byte outside the token alphabet", ErrMalformed)
	}
	for ; i < len(tok); i++ {
		if tok[i] != '=' {
			return fmt.Errorf("%w: byte %d of the bearer token is outside the token alphabet", ErrMalformed, i)
		}
	}
	return nil
}
