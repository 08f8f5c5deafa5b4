package builder

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
)

// archiveFile is a file an OCI archive is written to, with the export's
// progress meter (nil: none). tarLayer copies a stored blob into it inside
// the kernel (copy_file_range, or splice to a pipe) rather than through a
// user-space buffer: W1's 258 MB of blobs took 0.4 s that way.
type archiveFile struct {
	f *os.File
	m *meter
}

func (a *archiveFile) Write(p []byte) (int, error) {
	n, err := a.f.Write(p)
	if a.m != nil {
		a.m.Write(p[:n])
	}
	return n, err
}

// copyEntry writes the entry hdr with src's first hdr.Size bytes as its
// content, the same bytes tw would write: tw's padding of the entry before
// is flushed first, and tw goes on with the next entry as if it had written
// this one.
func (a *archiveFile) copyEntry(tw *tar.Writer, hdr *tar.Header, src *os.File) error {
	if err := tw.Flush(); err != nil {
		return err
	}
	var head bytes.Buffer
	if err := tar.NewWriter(&head).WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := a.Write(head.Bytes()); err != nil {
		return err
	}
	// A *os.File's ReadFrom from a limited *os.File is copy_file_range (or
	// splice), falling back to a buffered copy where neither applies.
	n, err := a.f.ReadFrom(io.LimitReader(src, hdr.Size))
	if a.m != nil {
		a.m.set(a.m.current+n, a.m.total)
	}
	if err != nil {
		return err
	}
	if n != hdr.Size {
		return fmt.Errorf("%s: %d of %d bytes: %w", hdr.Name, n, hdr.Size, io.ErrUnexpectedEOF)
	}
	_, err = a.Write(make([]byte, -hdr.Size&(512-1)))
	return err
}
