package vault

import "os"

var osReadFile = os.ReadFile
