package agent

import "context"

type requestKey struct{}

// RequestFromContext returns the turn request a context belongs to, so
// that decorators of the Store, Model and Tools (rate limits, budgets,
// telemetry) can tell whose call they see. It is set for the whole turn.
func RequestFromContext(ctx context.Context) (Request, bool) {
	r, ok := ctx.Value(requestKey{}).(Request)
	return r, ok
}

func withRequest(ctx context.Context, r Request) context.Context {
	return context.WithValue(ctx, requestKey{}, r)
}
