package dockerfile

import (
	"errors"
	"fmt"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Error is a problem in a Dockerfile. Line is 1-based; 0 means the problem is
// with the file as a whole (it is empty, or has no FROM).
type Error struct {
	File string
	Line int
	Err  error
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrNotSupported is wrapped by every error about a Dockerfile feature that is
// valid for Docker but that Strata does not implement yet: the features of
// the support table (support.go).
var ErrNotSupported = errors.New("not supported by strata yet")

// errorAt attaches the file and a line to err. BuildKit's errors carry their
// own location (parser.LocationError); it wins over the fallback line, and its
// wrapper is dropped so the message does not repeat the line number.
func errorAt(file string, line int, err error) error {
	var le *parser.LocationError
	if errors.As(err, &le) {
		if l := firstLine(le.Locations); l > 0 {
			line = l
		}
		if inner := le.Unwrap(); inner != nil {
			err = inner
		}
	}
	var own *Error
	if errors.As(err, &own) {
		return err
	}
	return &Error{File: file, Line: line, Err: err}
}

func firstLine(locs [][]parser.Range) int {
	for _, loc := range locs {
		for _, r := range loc {
			if r.Start.Line > 0 {
				return r.Start.Line
			}
		}
	}
	return 0
}
