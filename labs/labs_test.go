package labs_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fibercut/fibercut/labs"
	"github.com/fibercut/fibercut/topology"
)

// TestTopologiesParse checks that every file under topologies/ parses, is
// embedded, and is named after its topology.
func TestTopologiesParse(t *testing.T) {
	files, err := filepath.Glob("topologies/*")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no files under topologies/")
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			tp, err := topology.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.TrimSuffix(filepath.Base(path), ".yaml"); tp.Name != want {
				t.Errorf("name %q, want %q (the file name)", tp.Name, want)
			}
			onDisk, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			embedded, err := fs.ReadFile(labs.Topologies, path)
			if err != nil {
				t.Fatalf("not embedded: %v", err)
			}
			if string(embedded) != string(onDisk) {
				t.Error("embedded copy differs from the file")
			}
		})
	}
}
