package kube

import (
	"fmt"
	"io"

	"sigs.k8s.io/yaml"
)

// WriteYAML writes the objects as one YAML stream, in the order they are
// created, after a comment saying what they are.
func WriteYAML(w io.Writer, o *Objects, header string) error {
	if header != "" {
		if _, err := io.WriteString(w, header); err != nil {
			return err
		}
	}
	for i, obj := range o.All() {
		b, err := yaml.Marshal(obj)
		if err != nil {
			return fmt.Errorf("kube: write %s as YAML: %w", obj.GetName(), err)
		}
		if i > 0 {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return err
			}
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}
