//go:build !linux

package rootless

import "errors"

// Init does nothing where strata has no user namespaces.
func Init() {}

// Enter refuses: user namespaces are Linux's.
func Enter(Mapping) (int, error) {
	return 0, &UnavailableError{Err: errors.New("user namespaces need Linux")}
}
