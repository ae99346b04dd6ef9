# Logical backups (`pylon backup DIR` against DATABASE_URL, then `aws s3 sync DIR
# s3://<bucket>/<date>/`) from an operator host or a scheduled task of your own; the
# image has no AWS CLI. Aurora's automated backups (db_backup_retention_days) cover
# point-in-time restore on their own.

resource "aws_s3_bucket" "backups" {
  bucket_prefix = "${var.name}-${var.pylon_region}-backups-"
}

resource "aws_s3_bucket_public_access_block" "backups" {
  bucket                  = aws_s3_bucket.backups.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "backups" {
  bucket = aws_s3_bucket.backups.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "backups" {
  bucket = aws_s3_bucket.backups.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "backups" {
  bucket = aws_s3_bucket.backups.id
  rule {
    id     = "expire"
    status = "Enabled"
    filter {}
    expiration {
      days = var.backup_expiry_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 7
    }
  }
}
