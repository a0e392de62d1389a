package auth

import (
	"errors"
	"net/http"
)

// Every error this package returns for a bad credential wraps exactly one
// of these sentinels, so a caller picks the status with errors.Is (or
// [Status]). Their messages, and every message wrapped around them, never
// hold a secret, a token or a whole header: at most a key's public id, a
// JWT's kid or a claim name, cut short.
//
// RFC 6750 §3.1 decides 401 against 403. A request whose credential is
// absent, unreadable, unknown, revoked, expired, badly signed or from an
// issuer we do not trust gets 401 (error="invalid_token", or no error
// code when there was no credential at all): the caller is not
// authenticated. 403 (error="insufficient_scope") is kept for a
// credential that verifies, from an issuer we trust, but does not admit
// the caller here: a JWT minted for another audience, or one that names
// no usable tenant. We only return a 403 after the signature has been
// checked, so a forged token never learns more than 401.
var (
	// ErrMissingCredentials means the request carries no credential: no
	// Authorization header, or an empty one, or (mode apigw) no authorizer
	// context. 401, with no error code in the challenge.
	ErrMissingCredentials = errors.New("auth: missing credentials")
	// ErrMalformed means the credential cannot be read: a scheme other than
	// Bearer, bad spacing, bytes outside the token alphabet, too long, a
	// key not of the form lga_<id>_<secret>, a JWT that is not three
	// base64url parts of JSON, or an alg we do not accept (none, HS*). 401.
	ErrMalformed = errors.New("auth: malformed credentials")
	// ErrUnknownKey means an API key is well formed but no key with its id
	// exists, or its secret does not match. The two are one error so that
	// a guess learns nothing about which ids exist. 401.
	ErrUnknownKey = errors.New("auth: unknown API key")
	// ErrRevoked means an API key's secret matches but the key was revoked.
	// 401.
	ErrRevoked = errors.New("auth: API key revoked")
	// ErrExpired means a JWT's exp is in the past (beyond the leeway). 401.
	ErrExpired = errors.New("auth: token expired")
	// ErrNotYetValid means a JWT's nbf is in the future (beyond the
	// leeway). 401.
	ErrNotYetValid = errors.New("auth: token not yet valid")
	// ErrBadSignature means a JWT's signature does not verify with the key
	// its kid names, or its alg does not fit that key. 401.
	ErrBadSignature = errors.New("auth: bad token signature")
	// ErrUnknownKID means a JWT names a kid the JWKS does not hold, even
	// after a refetch (or a refetch was asked for too soon after the last
	// one). 401.
	ErrUnknownKID = errors.New("auth: unknown token signing key")
	// ErrWrongIssuer means a JWT's signature verifies but its iss is not
	// the configured issuer: nobody we trust vouches for the caller. 401.
	ErrWrongIssuer = errors.New("auth: wrong token issuer")
	// ErrWrongAudience means a JWT from our issuer, correctly signed and
	// in date, was minted for another audience: the caller is known but the
	// token is not for this service. 403.
	ErrWrongAudience = errors.New("auth: wrong token audience")
	// ErrForbidden means the credential is valid but gives no tenant we can
	// use: the tenant claim (or authorizer context field) is missing or
	// fails [ValidTenant]. 403.
	ErrForbidden = errors.New("auth: forbidden")

	// ErrJWKSUnavailable means the JWKS could not be fetched (or parsed)
	// and no key we had fits the token. It is our failure, not the
	// caller's: [Status] gives 0, and the caller answers 503.
	ErrJWKSUnavailable = errors.New("auth: JWKS unavailable")

	// ErrNotFound means [Registry.Revoke] was given an id no stored key
	// has. It is an answer to an operator, not to a request.
	ErrNotFound = errors.New("auth: key not found")
	// ErrNoStore means a [Registry] without a store was asked to create,
	// list or revoke keys, or to revoke a key of the static key file.
	ErrNoStore = errors.New("auth: no writable key store")
	// ErrInvalidTenant means a tenant name fails [ValidTenant].
	ErrInvalidTenant = errors.New("auth: invalid tenant")
	// ErrKeyFile means a static key file (see [ParseKeyFile]) is
	// malformed; the message names the line.
	ErrKeyFile = errors.New("auth: bad key file")
)

// unauthorized and forbidden list the sentinels by status, for [Status].
var (
	unauthorized = []error{ErrMissingCredentials, ErrMalformed, ErrUnknownKey, ErrRevoked,
		ErrExpired, ErrNotYetValid, ErrBadSignature, ErrUnknownKID, ErrWrongIssuer}
	forbidden = []error{ErrWrongAudience, ErrForbidden}
)

// Status returns the HTTP status for an error from [Authenticator.Authenticate]
// or a verifier: 401, 403, or 0 when err is none of this package's
// credential errors (a store that cannot be reached, say), which the
// caller maps as it maps any internal failure (500 or 503).
func Status(err error) int {
	for _, e := range forbidden {
		if errors.Is(err, e) {
			return http.StatusForbidden
		}
	}
	for _, e := range unauthorized {
		if errors.Is(err, e) {
			return http.StatusUnauthorized
		}
	}
	return 0
}

// Challenge returns the WWW-Authenticate value RFC 6750 §3 asks for
// alongside a 401 or 403 from [Status]: `Bearer realm="lambdagent"` when
// there was no credential, with error="invalid_token" or
// error="insufficient_scope" otherwise. It returns "" when [Status] is 0.
// It never echoes anything from the request.
func Challenge(err error) string {
	switch Status(err) {
	case http.StatusForbidden:
		return `Bearer realm="lambdagent", error="insufficient_scope"`
	case http.StatusUnauthorized:
		if errors.Is(err, ErrMissingCredentials) {
			return `Bearer realm="lambdagent"`
		}
		return `Bearer realm="lambdagent", error="invalid_token"`
	}
	return ""
}
