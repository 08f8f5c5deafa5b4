package layer

import (
	"archive/tar"
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// rawEnt is an archive entry with the header fields archive/tar's writer
// will not set: PAX records ('x') that override the ustar name or link
// name, which the writer drops, and GNU long names ('L', 'K').
type rawEnt struct {
	hdr              tar.Header // written as ustar
	pax              map[string]string
	gnuName, gnuLink string
	data             string
}

// rawArchive writes ents. Each extended header is written as a regular
// file by archive/tar and then retyped, with its checksum fixed.
func rawArchive(t testing.TB, ents ...rawEnt) []byte {
	t.Helper()
	var out bytes.Buffer
	for _, e := range ents {
		if len(e.pax) > 0 {
			keys := make([]string, 0, len(e.pax))
			for k := range e.pax {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			var recs strings.Builder
			for _, k := range keys {
				recs.WriteString(paxRecord(k, e.pax[k]))
			}
			out.Write(extHeader(t, tar.TypeXHeader, recs.String()))
		}
		if e.gnuName != "" {
			out.Write(extHeader(t, tar.TypeGNULongName, e.gnuName+"\x00"))
		}
		if e.gnuLink != "" {
			out.Write(extHeader(t, tar.TypeGNULongLink, e.gnuLink+"\x00"))
		}
		hdr := e.hdr
		hdr.Format, hdr.Size = tar.FormatUSTAR, int64(len(e.data))
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
		}
		out.Write(tarBlocks(t, &hdr, e.data))
	}
	out.Write(make([]byte, 1024))
	return out.Bytes()
}

// paxRecord is one "LEN KEY=VALUE\n" record; LEN counts itself.
func paxRecord(k, v string) string {
	rest := " " + k + "=" + v + "\n"
	n := len(rest) + 1
	for len(fmt.Sprint(n))+len(rest) != n {
		n++
	}
	return fmt.Sprint(n) + rest
}

func extHeader(t testing.TB, typ byte, data string) []byte {
	b := tarBlocks(t, &tar.Header{Name: "././@LongLink", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data)), Format: tar.FormatUSTAR}, data)
	b[156] = typ
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b[:512] {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// tarBlocks is the header and padded data of one entry, no end marker.
func tarBlocks(t testing.TB, hdr *tar.Header, data string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(hdr); err != nil {
		t.Fatalf("writing header %q: %v", hdr.Name, err)
	}
	if _, err := tw.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
