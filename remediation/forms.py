"""The remediation request form of the admin. It only parses input: the rules live in
remediation.services.activity_create, whose errors the view maps back onto these fields."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from portal.formatting import grouped
from recommendations.models import DeviceGroup, SecurityRecommendation
from recommendations.selectors import device_group_list, exposed_counts_by_group

from .models import Priority, RemediationOption
from .rules import default_due_date, default_option, options_for_recommendation


class ExposedGroupsWidget(forms.CheckboxSelectMultiple):
    """Checkboxes whose groups without an exposed device cannot be ticked (nothing to remediate there)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.counts: dict[int, int] = {}

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex=subindex, attrs=attrs)
        pk = getattr(value, "value", value)
        if not self.counts.get(pk):
            option["attrs"]["disabled"] = True
        return option


class DeviceGroupChoiceField(forms.ModelMultipleChoiceField):
    """Device groups labelled with how many of their devices are exposed to the recommendation."""

    def __init__(self, *args, counts: dict[int, int], **kwargs):
        self.counts = counts
        super().__init__(*args, **kwargs)

    def label_from_instance(self, obj: DeviceGroup) -> str:
        count = self.counts.get(obj.pk, 0)
        return ngettext("%(name)s (%(count)s exposed device)", "%(name)s (%(count)s exposed devices)", count) % {
            "name": obj.name,
            "count": grouped(count),
        }


class RemediationRequestForm(forms.Form):
    remediation_option = forms.ChoiceField(label=_("Remediation option"), widget=forms.RadioSelect)
    device_groups = DeviceGroupChoiceField(
        queryset=DeviceGroup.objects.none(),
        counts={},
        required=False,  # the service says "Select at least one device group."
        widget=ExposedGroupsWidget,
        label=_("Device groups"),
        help_text=_("Groups without an exposed device cannot be chosen: there is nothing to remediate."),
    )
    priority = forms.ChoiceField(label=_("Priority"), choices=Priority.choices, initial=Priority.MEDIUM)
    due_on = forms.DateField(
        label=_("Due date"),
        required=False,
        # An HTML date input takes ISO 8601 whatever the language (the browser shows it in its own locale).
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text=_("Required, today or later, except for 'Attention required', which has no due date."),
    )
    requester_notes = forms.CharField(
        label=_("Notes"), required=False, widget=forms.Textarea(attrs={"rows": 4, "cols": 60})
    )
    create_intune_task = forms.BooleanField(
        label=_("Create an Intune security task"),
        required=False,
        help_text=_("Sends the request and its target devices (at most 10,000) to Microsoft Intune."),
    )

    def __init__(self, *args, recommendation: SecurityRecommendation, user, intune_enabled: bool, **kwargs):
        super().__init__(*args, **kwargs)
        labels = dict(RemediationOption.choices)
        options = options_for_recommendation(recommendation)
        self.fields["remediation_option"].choices = [(value, labels[value]) for value in options]
        self.fields["remediation_option"].initial = default_option(recommendation)
        groups = self.fields["device_groups"]
        groups.queryset = device_group_list(user=user).order_by("name")
        groups.counts = groups.widget.counts = exposed_counts_by_group(recommendation=recommendation)
        self.fields["due_on"].initial = default_due_date()
        if not intune_enabled:
            # The option does not exist while the connection is off (DESIGN.md section 4).
            del self.fields["create_intune_task"]
        self.duplicate_of = None
        if self.data.get("confirm_duplicate") is not None:  # the form came back with the warning
            self._add_confirm_duplicate()

    def _add_confirm_duplicate(self) -> None:
        self.fields["confirm_duplicate"] = forms.BooleanField(
            label=_("File it anyway"),
            required=False,
            help_text=_("Another active activity already covers this recommendation in one of these device groups."),
        )

    def ask_to_confirm_duplicate(self, *, existing, message: str) -> None:
        """The service found an active activity like this one: warn, and offer to file it anyway."""
        self.duplicate_of = existing
        if "confirm_duplicate" not in self.fields:
            self._add_confirm_duplicate()
        self.add_error(None, message)

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        return {
            "remediation_option": data["remediation_option"],
            "priority": data["priority"],
            "device_groups": list(data["device_groups"]),
            "due_on": data["due_on"],
            "requester_notes": data["requester_notes"],
            "create_intune_task": self._intune_task_requested(),
            "confirm_duplicate": bool(data.get("confirm_duplicate")),
        }

    def _intune_task_requested(self) -> bool:
        if "create_intune_task" in self.fields:
            return self.cleaned_data["create_intune_task"]
        # The checkbox is hidden while the connection is off, but a form shown before it was
        # turned off (or a forged post) may still ask: pass it on so the service refuses it.
        return forms.CheckboxInput().value_from_datadict(self.data, self.files, self.add_prefix("create_intune_task"))
