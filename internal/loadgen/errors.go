package loadgen

import "errors"

var (
	// ErrBadConfig means a Config, ColdConfig or Figures value cannot be
	// used; the error says which field.
	ErrBadConfig = errors.New("loadgen: bad configuration")
	// ErrUnknownModel means the prices table has no entry for a model.
	ErrUnknownModel = errors.New("loadgen: no prices for model")
)
