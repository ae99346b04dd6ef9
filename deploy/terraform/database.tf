# Aurora Serverless v2 PostgreSQL 16: entities, the change log, sessions, saved matches.

resource "aws_security_group" "db" {
  name        = "${var.name}-${var.pylon_region}-db"
  description = "pylon database: Postgres from the pylon tasks only"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "db_from_tasks" {
  security_group_id            = aws_security_group.db.id
  referenced_security_group_id = aws_security_group.tasks.id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

resource "aws_db_subnet_group" "pylon" {
  name       = "${var.name}-${var.pylon_region}"
  subnet_ids = var.private_subnet_ids
}

# pylon's Postgres client does not speak TLS today, so the cluster must accept plain
# connections (inside the VPC, from the task's security group only). Turn this back to
# 1 once pylon connects with TLS.
resource "aws_rds_cluster_parameter_group" "pylon" {
  name   = "${var.name}-${var.pylon_region}-pg16"
  family = "aurora-postgresql16"

  parameter {
    name  = "rds.force_ssl"
    value = "0"
  }
}

resource "aws_rds_cluster" "pylon" {
  cluster_identifier              = "${var.name}-${var.pylon_region}"
  engine                          = "aurora-postgresql"
  engine_mode                     = "provisioned"
  engine_version                  = "16.4"
  database_name                   = "pylon"
  master_username                 = "pylon"
  master_password                 = random_password.db.result
  db_subnet_group_name            = aws_db_subnet_group.pylon.name
  db_cluster_parameter_group_name = aws_rds_cluster_parameter_group.pylon.name
  vpc_security_group_ids          = [aws_security_group.db.id]
  storage_encrypted               = true
  backup_retention_period         = var.db_backup_retention_days
  preferred_backup_window         = "02:00-03:00"
  deletion_protection             = true
  skip_final_snapshot             = false
  final_snapshot_identifier       = "${var.name}-${var.pylon_region}-final"

  serverlessv2_scaling_configuration {
    min_capacity = var.db_min_acu
    max_capacity = var.db_max_acu
  }
}

resource "aws_rds_cluster_instance" "pylon" {
  identifier          = "${var.name}-${var.pylon_region}-1"
  cluster_identifier  = aws_rds_cluster.pylon.id
  engine              = aws_rds_cluster.pylon.engine
  engine_version      = aws_rds_cluster.pylon.engine_version
  instance_class      = "db.serverless"
  publicly_accessible = false
}
