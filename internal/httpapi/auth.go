package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"github.com/lambdagent/lambdagent/internal/apierr"
	"github.com/lambdagent/lambdagent/internal/auth"
)

// authenticated runs f for the request's principal, which it finds before
// anything else is read (the body stays unread for a stranger, see #13):
//
//   - a principal already in the context: the Lambda adapter put it there
//     for an IAM-authenticated event (SQS, EventBridge, a direct
//     invocation). Nothing from the network can set a context value.
//   - otherwise the Authenticator's verdict on the request. In mode none
//     (or with no Authenticator) the TenantHeader, when configured, names
//     the tenant; in every other mode config validation refuses the header.
//
// A refusal is a 401 or 403 with WWW-Authenticate and the JSON error
// shape; a store or JWKS that cannot answer is a 5xx.
func (h *handler) authenticated(f http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := h.principal(r)
		if err != nil {
			h.writeAuthError(w, r, err)
			return
		}
		f(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
	}
}

func (h *handler) principal(r *http.Request) (auth.Principal, error) {
	if p, ok := auth.PrincipalFrom(r.Context()); ok {
		return p, nil
	}
	if h.auth != nil && h.auth.Mode() != auth.MethodNone {
		return h.auth.Authenticate(r.Context(), r)
	}
	p := auth.Principal{Tenant: auth.DefaultTenant, Method: auth.MethodNone}
	if h.tenantH != "" {
		if v := r.Header.Get(h.tenantH); v != "" {
			if err := auth.ValidTenant(v); err != nil {
				return p, badRequest(h.tenantH + ": " + err.Error())
			}
			p.Tenant = v
		}
	}
	return p, nil
}

// errJWKSUnavailable is what the client sees when tokens cannot be checked.
var errJWKSUnavailable = &apierr.Error{Kind: apierr.Internal, Status: http.StatusServiceUnavailable,
	Message: "credentials cannot be verified right now; retry later"}

// authError classifies an error of authentication: auth's sentinels carry
// a status (auth.Status) and a message that holds no secret, at most a
// key's public id; anything else (a store down) is classified as any
// error is.
func authError(err error) *apierr.Error {
	var e *apierr.Error
	switch auth.Status(err) {
	case http.StatusUnauthorized:
		e = &apierr.Error{Kind: apierr.Unauthorized, Message: err.Error()}
		if errors.Is(err, auth.ErrMissingCredentials) {
			e.Message = "no credentials: send Authorization: Bearer <key>"
		}
	case http.StatusForbidden:
		e = &apierr.Error{Kind: apierr.Forbidden, Message: err.Error()}
	default:
		if errors.Is(err, auth.ErrJWKSUnavailable) {
			e = &apierr.Error{Kind: errJWKSUnavailable.Kind, Status: errJWKSUnavailable.Status, Message: errJWKSUnavailable.Message}
			break
		}
		return apierr.From(err)
	}
	e.Status, e.Err = e.StatusCode(), err
	return e
}

func (h *handler) writeAuthError(w http.ResponseWriter, r *http.Request, err error) {
	if c := auth.Challenge(err); c != "" {
		w.Header().Set("WWW-Authenticate", c)
	}
	h.writeError(w, r, authError(err))
}

// RequireToken serves next only to requests with "Authorization: Bearer
// <token>", compared in constant time, as the admin API compares its
// token; others get a JSON 401 with WWW-Authenticate. lambdagent puts
// /metrics and /readyz behind the admin token with it when
// LAMBDAGENT_OPS_AUTH=admin. An empty token refuses everyone.
func RequireToken(token string, next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(got))
		if ok && token != "" && len(r.Header.Values("Authorization")) == 1 && subtle.ConstantTimeCompare(sum[:], want[:]) == 1 {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="lambdagent admin"`)
		apierr.WriteKind(w, apierr.Unauthorized, "this endpoint needs the admin token: Authorization: Bearer <LAMBDAGENT_ADMIN_TOKEN>")
	})
}
