"""The tutorial's polls, with a few more field types to carry through a lease."""

from django.db import models


class Poll(models.Model):
    question = models.CharField(max_length=200, unique=True)
    pub_date = models.DateTimeField("date published")
    closes_on = models.DateField(null=True)
    opens_at = models.TimeField(null=True)
    banner = models.BinaryField(null=True)

    def __str__(self):
        return self.question


class Choice(models.Model):
    poll = models.ForeignKey(Poll, on_delete=models.CASCADE)
    choice_text = models.CharField(max_length=200)
    votes = models.IntegerField(default=0)
    weight = models.DecimalField(max_digits=12, decimal_places=4, default=0)

    def __str__(self):
        return self.choice_text
