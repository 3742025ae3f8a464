package bwrapd

import (
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"
)

// invalidUTF8 returns the name of the first string in v that is not valid UTF-8
// ("command[2]", "env[\"K\"]", "mounts[0].source", "stdin.text", ...), or "" when
// there is none. encoding/json would send such a string with U+FFFD in place of the
// bad bytes: another path, argument or input than the caller gave.
func invalidUTF8(v reflect.Value, path string) string {
	switch v.Kind() {
	case reflect.String:
		if !utf8.ValidString(v.String()) {
			return orParams(path)
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return invalidUTF8(v.Elem(), path)
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return "" // bytes go base64-encoded (StdinBytes), or are raw JSON
		}
		for i := 0; i < v.Len(); i++ {
			if bad := invalidUTF8(v.Index(i), fmt.Sprintf("%s[%d]", path, i)); bad != "" {
				return bad
			}
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			k := iter.Key()
			name := fmt.Sprintf("%s[%q]", path, fmt.Sprint(k.Interface()))
			if bad := invalidUTF8(k, name+" (the key)"); bad != "" {
				return bad
			}
			if bad := invalidUTF8(iter.Value(), name); bad != "" {
				return bad
			}
		}
	case reflect.Struct:
		if v.CanInterface() {
			switch x := v.Interface().(type) {
			case Stdin:
				return invalidStdin(x, path)
			case Output:
				if x.mode == "" && !utf8.ValidString(x.path) {
					return join(path, "file")
				}
				return ""
			}
		}
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" && !f.Anonymous {
				name = f.Name
			}
			if bad := invalidUTF8(v.Field(i), join(path, name)); bad != "" {
				return bad
			}
		}
	}
	return ""
}

func invalidStdin(s Stdin, path string) string {
	if utf8.ValidString(s.text) {
		return ""
	}
	switch s.kind {
	case kindText:
		return join(path, "text")
	case kindFile:
		return join(path, "file")
	}
	return ""
}

func join(path, name string) string {
	if path == "" || name == "" {
		return path + name
	}
	return path + "." + name
}

func orParams(path string) string {
	if path == "" {
		return "params"
	}
	return path
}

// checkMessage refuses a request the helper could not take as it is: a string that
// is not valid UTF-8 anywhere in it (ErrInvalidUTF8).
func checkMessage(m outMessage) error {
	if !utf8.ValidString(m.Method) {
		return fmt.Errorf("bwrapd: method name %q: %w", m.Method, ErrInvalidUTF8)
	}
	if bad := invalidUTF8(reflect.ValueOf(m.Params), ""); bad != "" {
		return fmt.Errorf("bwrapd: %s: %s: %w; nothing was sent (use StdinBytes for binary input)",
			m.Method, bad, ErrInvalidUTF8)
	}
	return nil
}
