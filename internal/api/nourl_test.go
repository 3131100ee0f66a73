package api

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// No answer of the server names a place for the client to contact
// (security.md §2 row 11, "key material sent to server-supplied URLs"):
// the only address a client uses is the one its user gave, with the
// certificate pinned. These tests keep it so: every type this package
// declares is walked, field by field, for a name or JSON key that suggests
// a location.

// apiTypes lists every type the package declares. TestAPITypesListed fails
// when the source declares one that is missing here, so a new request or
// answer type is checked as soon as it exists.
var apiTypes = []reflect.Type{
	reflect.TypeFor[Error](),
	reflect.TypeFor[PreloginRequest](),
	reflect.TypeFor[PreloginResponse](),
	reflect.TypeFor[DeviceHello](),
	reflect.TypeFor[RegisterRequest](),
	reflect.TypeFor[LoginRequest](),
	reflect.TypeFor[Session](),
	reflect.TypeFor[RefreshRequest](),
	reflect.TypeFor[Account](),
	reflect.TypeFor[AccountUpdate](),
	reflect.TypeFor[Credentials](),
	reflect.TypeFor[TOTPSetup](),
	reflect.TypeFor[TOTPEnable](),
	reflect.TypeFor[RecoveryCodes](),
	reflect.TypeFor[TOTPDisable](),
	reflect.TypeFor[Device](),
	reflect.TypeFor[Devices](),
	reflect.TypeFor[Login](),
	reflect.TypeFor[Logins](),
	reflect.TypeFor[Vault](),
	reflect.TypeFor[Vaults](),
	reflect.TypeFor[VaultPut](),
	reflect.TypeFor[Entry](),
	reflect.TypeFor[LogPage](),
	reflect.TypeFor[LogAppend](),
	reflect.TypeFor[LogAppended](),
	reflect.TypeFor[OrgEntry](),
	reflect.TypeFor[Org](),
	reflect.TypeFor[Orgs](),
	reflect.TypeFor[OrgCreate](),
	reflect.TypeFor[OrgLogPage](),
	reflect.TypeFor[OrgAppend](),
	reflect.TypeFor[OrgAppended](),
}

// locationWords are the pieces of a field name or JSON key that suggest a
// place to contact (matched case-insensitively, anywhere in the name).
var locationWords = []string{"url", "uri", "href", "endpoint", "host", "redirect", "callback", "webhook", "connector", "origin"}

// allowedLocationFields are fields that match a location word and are
// known not to be one the client contacts. Each needs its reason.
var allowedLocationFields = map[string]string{
	// The otpauth:// URI of a TOTP secret the server made for its own
	// second factor: the client prints it for the user's authenticator
	// app (`safe 2fa enable`, internal/cli/cmd_sync.go) and never dereferences it;
	// httpremote bounds it to 2,048 printable characters. It carries no
	// key material of the client.
	"TOTPSetup.URI": "otpauth URI, printed, never fetched",
}

// declaredTypes returns the names of every type declared in the package's
// non-test Go files.
func declaredTypes(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var names []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.TYPE {
				continue
			}
			for _, s := range g.Specs {
				names = append(names, s.(*ast.TypeSpec).Name.Name)
			}
		}
	}
	if len(names) == 0 {
		t.Fatal("found no type declarations: the test does not read the package source")
	}
	slices.Sort(names)
	return names
}

func TestAPITypesListed(t *testing.T) {
	var listed []string
	for _, rt := range apiTypes {
		listed = append(listed, rt.Name())
	}
	for _, name := range declaredTypes(t) {
		if !slices.Contains(listed, name) {
			t.Errorf("type %s is declared in package api but missing from apiTypes in nourl_test.go: add it so that its fields are checked", name)
		}
	}
}

// locationFields walks rt and returns every field path whose name or JSON
// key contains a location word, and every map or interface (whose keys or
// contents the server chooses, so no check of names can cover them).
func locationFields(rt reflect.Type) []string {
	var out []string
	seen := map[reflect.Type]bool{}
	var walk func(rt reflect.Type, path string)
	walk = func(rt reflect.Type, path string) {
		switch rt.Kind() {
		case reflect.Pointer:
			walk(rt.Elem(), path)
			return
		case reflect.Slice, reflect.Array:
			walk(rt.Elem(), path+"[]")
			return
		case reflect.Map, reflect.Interface:
			out = append(out, path+" is a "+rt.Kind().String()+": its keys or contents are the sender's to choose")
			return
		case reflect.Struct:
		default:
			return
		}
		if seen[rt] {
			return
		}
		seen[rt] = true
		for i := range rt.NumField() {
			f := rt.Field(i)
			key, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			p := path + "." + f.Name
			if _, ok := allowedLocationFields[rt.Name()+"."+f.Name]; !ok {
				for _, w := range locationWords {
					if strings.Contains(strings.ToLower(f.Name), w) || strings.Contains(strings.ToLower(key), w) {
						out = append(out, p+" (json "+`"`+key+`"`+") suggests a location: "+w)
						break
					}
				}
			}
			walk(f.Type, p)
		}
	}
	walk(rt, rt.Name())
	return out
}

// TestNoLocationFields: no field of any API type, however deeply nested,
// is named like an address the client would contact.
func TestNoLocationFields(t *testing.T) {
	for _, rt := range apiTypes {
		for _, f := range locationFields(rt) {
			t.Errorf("%s: a server must not be able to name a place for the client to contact (security.md row 11); if this field is not one, add it to allowedLocationFields with the reason", f)
		}
	}
	// Every allowed field still exists and still needs the exception.
	for name := range allowedLocationFields {
		typ, field, _ := strings.Cut(name, ".")
		i := slices.IndexFunc(apiTypes, func(rt reflect.Type) bool { return rt.Name() == typ })
		if i < 0 {
			t.Errorf("allowedLocationFields names %s, but there is no type %s", name, typ)
			continue
		}
		if _, ok := apiTypes[i].FieldByName(field); !ok {
			t.Errorf("allowedLocationFields names %s, which no longer exists: remove it", name)
		}
	}
}

// TestLocationFieldsFindsThem checks the walker on types made to fail it:
// nested, behind pointers and slices, by name or by JSON key only.
func TestLocationFieldsFindsThem(t *testing.T) {
	type inner struct {
		Next string `json:"redirect_to"`
	}
	type deep struct {
		Items []*inner `json:"items"`
	}
	type hostile struct {
		Plain     string `json:"plain"`
		KeyServer string `json:"key_connector"`
		Endpoint  []byte `json:"e"`
		Deep      *deep  `json:"deep"`
		Extra     map[string][]byte
		Any       any `json:"any"`
		Origin    [2]string
	}
	got := locationFields(reflect.TypeFor[hostile]())
	for _, want := range []string{"hostile.KeyServer", "hostile.Endpoint", "hostile.Deep.Items[].Next", "hostile.Extra", "hostile.Any", "hostile.Origin"} {
		if !slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, want+" ") }) {
			t.Errorf("not found: %s (found %q)", want, got)
		}
	}
	if len(got) != 6 {
		t.Errorf("found %d, want 6: %q", len(got), got)
	}
}
