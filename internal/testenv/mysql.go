package testenv

import (
	"gorm.io/driver/mysql"
	"gorm.io/gorm"
)

func gormMySQL(dsn string) gorm.Dialector { return mysql.Open(dsn) }
