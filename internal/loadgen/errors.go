package loadgen

import "errors"

var (
	// ErrBadConfig means a Config, ColdConfig or Figures value cannot be
	// used; the error says which field.
	ErrBadConfig = errors.New("loadgen: bad configuration")
	// ErrUnknownModel means the prices table has no entry for a model.
	ErrUnknownModel = errors.New("loadgen: no prices for model")
	// ErrNoKey means the server answered 401 or 403 to a request sent
	// without an API key.
	ErrNoKey = errors.New("loadgen: the server wants an API key: pass -key or set LAMBDAGENT_API_KEY")
	// ErrKeyRefused means the server answered 401 or 403 to a request
	// sent with the API key.
	ErrKeyRefused = errors.New("loadgen: the key was refused")
)
