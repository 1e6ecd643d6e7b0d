package topology

import (
	"bytes"
	"errors"
	"io/fs"
	"reflect"
	"strings"
	"testing"

	"github.com/fibercut/fibercut/labs"
)

// FuzzParse checks that Parse never panics, that every error is a one-line
// *Error with a position, and that whatever parses survives Marshal and
// Parse unchanged. Seeds: the built-ins and testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	for _, name := range BuiltinNames() {
		data, err := fs.ReadFile(labs.Topologies, builtinDir+"/"+name+".yaml")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tp, err := Parse("fuzz.yaml", data)
		if err != nil {
			checkError(t, err)
			return
		}
		out, err := tp.Marshal()
		if err != nil {
			t.Fatalf("Marshal() of a parsed topology: %v", err)
		}
		back, err := Parse("fuzz.yaml", out)
		if err != nil {
			t.Fatalf("Parse(Marshal()): %v\n%s", err, out)
		}
		if !reflect.DeepEqual(back, tp) {
			t.Fatalf("round trip differs:\n%s", compare(back, tp))
		}
		again, err := back.Marshal()
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("Marshal() is not stable: %v\n%s\n%s", err, out, again)
		}
	})
}

func checkError(t *testing.T, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	if e.Line < 1 || e.Column < 1 {
		t.Fatalf("error without a position: %v", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Fatalf("error spans several lines: %q", err.Error())
	}
}
